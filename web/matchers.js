// Alertmanager's matcher syntax, as its UI and amtool take it: {a="b", c=~"d.*", e!="f"}.
// Braces are optional; values may be quoted (with \" \\ \n escapes) or bare.

const OPERATORS = ["=~", "!~", "!=", "="];

/** Parses a matcher list into the API's {name, value, isRegex, isEqual}; throws with a position. */
export function parseMatchers(text) {
  let input = text.trim();
  if (input.startsWith("{")) {
    if (!input.endsWith("}")) throw new Error("matchers: missing closing }");
    input = input.slice(1, -1);
  }
  const matchers = [];
  let at = 0;
  const fail = (what) => { throw new Error(`matchers: ${what} at character ${at + 1} of ${JSON.stringify(input)}`); };
  const skip = () => { while (at < input.length && /[\s,]/.test(input[at])) at++; };
  const quoted = () => {
    let out = "";
    at++;
    while (at < input.length && input[at] !== '"') {
      if (input[at] === "\\") {
        at++;
        const escaped = input[at];
        out += escaped === "n" ? "\n" : escaped === "t" ? "\t" : escaped;
      } else {
        out += input[at];
      }
      at++;
    }
    if (input[at] !== '"') fail("unterminated quoted string");
    at++;
    return out;
  };
  skip();
  while (at < input.length) {
    let name;
    if (input[at] === '"') {
      name = quoted();
    } else {
      const start = at;
      while (at < input.length && !/[\s=!~,"{}]/.test(input[at])) at++;
      name = input.slice(start, at);
    }
    if (!name) fail("expected a label name");
    while (at < input.length && /\s/.test(input[at])) at++;
    const operator = OPERATORS.find((candidate) => input.startsWith(candidate, at));
    if (!operator) fail(`expected one of ${OPERATORS.join(" ")} after ${name}`);
    at += operator.length;
    while (at < input.length && /\s/.test(input[at])) at++;
    let value;
    if (input[at] === '"') {
      value = quoted();
    } else {
      const start = at;
      while (at < input.length && input[at] !== ",") at++;
      value = input.slice(start, at).trim();
    }
    matchers.push({ name, value, isRegex: operator.includes("~"), isEqual: !operator.startsWith("!") });
    skip();
  }
  return matchers;
}

export function operatorOf(matcher) {
  if (matcher.isEqual === false) return matcher.isRegex ? "!~" : "!=";
  return matcher.isRegex ? "=~" : "=";
}

function quote(text) {
  return `"${String(text).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** One matcher as the API's `filter` parameter takes it: name="value". */
export function formatMatcher(matcher) {
  const name = /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(matcher.name) ? matcher.name : quote(matcher.name);
  return `${name}${operatorOf(matcher)}${quote(matcher.value)}`;
}

export function formatMatchers(matchers) {
  return `{${matchers.map(formatMatcher).join(", ")}}`;
}

/** Equality matchers for every label of a set: what "silence this" pre-fills. */
export function matchersForLabels(labels) {
  return Object.keys(labels).sort().map((name) => ({ name, value: labels[name], isRegex: false, isEqual: true }));
}
