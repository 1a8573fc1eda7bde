// The node's JSON APIs. The page lives at <prefix>/ui/, so "../" is the route prefix, whatever
// --web.external-url says.

const base = new URL("../", location.href);

function url(path, params) {
  const target = new URL(path.replace(/^\//, ""), base);
  for (const [key, value] of params || []) target.searchParams.append(key, value);
  return target;
}

async function answer(response, what) {
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!response.ok || (body && body.status === "error")) {
    // Prometheus answers {status, errorType, error}; Alertmanager a JSON string.
    const message = body && body.error ? `${body.errorType}: ${body.error}` : typeof body === "string" ? body : response.statusText;
    throw new Error(`${what}: ${response.status} ${message}`);
  }
  return body && body.status === "success" ? body.data : body;
}

/** GET a JSON API; `params` is a list of [key, value] pairs (keys may repeat). */
export async function get(path, params) {
  const response = await fetch(url(path, params), { headers: { Accept: "application/json" } });
  return answer(response, `GET ${path}`);
}

/** Sends JSON with `method`; returns the decoded answer. */
export async function send(method, path, body) {
  const response = await fetch(url(path), {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(response, `${method} ${path}`);
}
