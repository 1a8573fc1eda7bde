//! The evaluator: walks a parsed template against a value, with Go's scoping, truth and field
//! rules, and with bounds on output, work, range iterations and template-call depth.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use jiff::tz::TimeZone;

use super::funcs::{self, FuncContext, html_escape_value};
use super::parse::{Command, Node, Operand, Pipeline, Term};
use super::timefmt;
use super::value::{Value, is_zero_time, pairs_get, sorted_pairs};
use super::{Defined, Limits, TemplateError};

/// Why evaluation stopped: at a position of the template being run (located when it unwinds
/// out of that template), or already located in a template it called.
pub(crate) enum Fail {
    At { pos: usize, message: String },
    Located(TemplateError),
}

type Eval<T> = Result<T, Fail>;

fn fail<T>(pos: usize, message: impl Into<String>) -> Eval<T> {
    Err(Fail::At {
        pos,
        message: message.into(),
    })
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'a> {
    /// Templates defined by the rendered text itself; they shadow the shared ones.
    pub overlay: &'a HashMap<String, Arc<Defined>>,
    pub shared: &'a HashMap<String, Arc<Defined>>,
    pub html: bool,
    pub limits: &'a Limits,
    pub out: String,
    steps: u64,
    iterations: u64,
    depth: usize,
    vars: Vec<(String, Value)>,
    funcs: FuncContext<'a>,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(
        overlay: &'a HashMap<String, Arc<Defined>>,
        shared: &'a HashMap<String, Arc<Defined>>,
        html: bool,
        limits: &'a Limits,
        funcs: FuncContext<'a>,
    ) -> Exec<'a> {
        Exec {
            overlay,
            shared,
            html,
            limits,
            out: String::new(),
            steps: 0,
            iterations: 0,
            depth: 0,
            vars: Vec::new(),
            funcs,
        }
    }

    /// Runs one template with `dot` as both `.` and `$`.
    pub(crate) fn run(&mut self, template: &Defined, dot: Value) -> Result<(), TemplateError> {
        match self.run_template(template, dot) {
            Ok(()) => Ok(()),
            Err(Fail::Located(error)) => Err(error),
            Err(Fail::At { pos, message }) => Err(template.locate(pos, message)),
        }
    }

    fn run_template(&mut self, template: &Defined, dot: Value) -> Eval<()> {
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        self.depth += 1;
        let result = self.walk_list(&template.body, &dot);
        self.depth -= 1;
        self.vars = saved_vars;
        match result {
            Ok(_) => Ok(()),
            Err(Fail::At { pos, message }) => Err(Fail::Located(template.locate(pos, message))),
            Err(located) => Err(located),
        }
    }

    fn step(&mut self, pos: usize) -> Eval<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return fail(
                pos,
                format!("evaluation exceeded {} steps", self.limits.max_steps),
            );
        }
        Ok(())
    }

    fn write(&mut self, text: &str, pos: usize) -> Eval<()> {
        if self.out.len() + text.len() > self.limits.max_output_bytes {
            return fail(
                pos,
                format!(
                    "output exceeds the limit of {} bytes",
                    self.limits.max_output_bytes
                ),
            );
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk_list(&mut self, nodes: &[Node], dot: &Value) -> Eval<Flow> {
        for node in nodes {
            match self.walk(node, dot)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    /// Runs a branch body with its own variable scope.
    fn walk_scoped(&mut self, nodes: &[Node], dot: &Value) -> Eval<Flow> {
        let mark = self.vars.len();
        let flow = self.walk_list(nodes, dot);
        self.vars.truncate(mark);
        flow
    }

    fn walk(&mut self, node: &Node, dot: &Value) -> Eval<Flow> {
        match node {
            Node::Text(text) => {
                self.step(0)?;
                self.write(text, 0)?;
            }
            Node::Action(pipe) => {
                self.step(pipe.pos)?;
                let value = self.pipeline(pipe, dot)?;
                if pipe.vars.is_empty() {
                    self.print(&value, pipe.pos)?;
                }
            }
            Node::If {
                pos,
                pipe,
                then,
                otherwise,
            }
            | Node::With {
                pos,
                pipe,
                body: then,
                otherwise,
            } => {
                self.step(*pos)?;
                let mark = self.vars.len();
                let value = self.pipeline(pipe, dot)?;
                let flow = if value.is_true() {
                    let inner_dot = if matches!(node, Node::With { .. }) {
                        value
                    } else {
                        dot.clone()
                    };
                    self.walk_scoped(then, &inner_dot)
                } else {
                    self.walk_scoped(otherwise, dot)
                };
                self.vars.truncate(mark);
                return flow;
            }
            Node::Range {
                pos,
                pipe,
                body,
                otherwise,
            } => {
                self.step(*pos)?;
                let mark = self.vars.len();
                let flow = self.range(*pos, pipe, body, otherwise, dot);
                self.vars.truncate(mark);
                return flow;
            }
            Node::Template { pos, name, pipe } => {
                self.step(*pos)?;
                let Some(template) = self
                    .overlay
                    .get(name)
                    .or_else(|| self.shared.get(name))
                    .cloned()
                else {
                    return fail(*pos, format!("template {name:?} not defined"));
                };
                if self.depth >= self.limits.max_call_depth {
                    return fail(
                        *pos,
                        format!(
                            "exceeded maximum template depth ({})",
                            self.limits.max_call_depth
                        ),
                    );
                }
                let value = match pipe {
                    Some(pipe) => self.pipeline(pipe, dot)?,
                    None => Value::Nil,
                };
                self.run_template(&template, value)?;
            }
            Node::Break(pos) => {
                self.step(*pos)?;
                return Ok(Flow::Break);
            }
            Node::Continue(pos) => {
                self.step(*pos)?;
                return Ok(Flow::Continue);
            }
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        pos: usize,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
    ) -> Eval<Flow> {
        let value = self.commands(pipe, dot)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(items) | Value::Alerts(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (Value::Int(i as i64), item.clone()))
                .collect(),
            Value::Pairs(pairs) => pairs
                .iter()
                .enumerate()
                .map(|(i, pair)| (Value::Int(i as i64), Value::Pair(Rc::new(pair.clone()))))
                .collect(),
            Value::Kv(map) => map
                .iter()
                .map(|(name, value)| (Value::str(name.as_str()), Value::str(value.as_str())))
                .collect(),
            // Go ranges over maps in key order.
            Value::StrMap(pairs) => pairs
                .iter()
                .map(|(name, value)| (Value::str(name.as_str()), Value::str(value.as_str())))
                .collect(),
            Value::AnyMap(pairs) => pairs
                .iter()
                .map(|(name, value)| (Value::str(name.as_str()), value.clone()))
                .collect(),
            Value::Samples(samples) => samples
                .iter()
                .enumerate()
                .map(|(i, sample)| (Value::Int(i as i64), Value::Sample(sample.clone())))
                .collect(),
            Value::Int(count) => {
                if pipe.vars.len() > 1 {
                    return fail(pos, "can't use range over int with two variables");
                }
                let count = (*count).max(0);
                if count as u64 > self.limits.max_range_iterations {
                    return fail(
                        pos,
                        format!(
                            "range exceeds {} iterations",
                            self.limits.max_range_iterations
                        ),
                    );
                }
                (0..count).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Nil => Vec::new(),
            other => {
                return fail(
                    pos,
                    format!("range can't iterate over {}", other.to_display()),
                );
            }
        };
        if items.is_empty() {
            return self.walk_scoped(otherwise, dot);
        }
        if !pipe.assign {
            for name in &pipe.vars {
                self.vars.push((name.clone(), Value::Nil));
            }
        }
        for (key, item) in items {
            self.iterations += 1;
            if self.iterations > self.limits.max_range_iterations {
                return fail(
                    pos,
                    format!(
                        "range exceeds {} iterations",
                        self.limits.max_range_iterations
                    ),
                );
            }
            match pipe.vars.as_slice() {
                [element] => self.set_var(element, item.clone(), pos)?,
                [index, element] => {
                    self.set_var(index, key, pos)?;
                    self.set_var(element, item.clone(), pos)?;
                }
                _ => {}
            }
            if let Flow::Break = self.walk_scoped(body, &item)? {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, value: Value, pos: usize) -> Eval<()> {
        match self.vars.iter_mut().rev().find(|(var, _)| var == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => fail(pos, format!("undefined variable: {name}")),
        }
    }

    fn print(&mut self, value: &Value, pos: usize) -> Eval<()> {
        let text = match value {
            // A missing value prints as Go's text/template prints an invalid one.
            Value::Nil => "<no value>".to_string(),
            Value::SafeHtml(html) if self.html => html.to_string(),
            other => other.to_display(),
        };
        if self.html && !matches!(value, Value::SafeHtml(_)) {
            return self.write(&html_escape_value(&text), pos);
        }
        self.write(&text, pos)
    }

    /// A pipeline's value, declaring or assigning its variables.
    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Eval<Value> {
        let value = self.commands(pipe, dot)?;
        for name in &pipe.vars {
            if pipe.assign {
                self.set_var(name, value.clone(), pipe.pos)?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn commands(&mut self, pipe: &Pipeline, dot: &Value) -> Eval<Value> {
        let mut value: Option<Value> = None;
        for command in &pipe.commands {
            value = Some(self.command(command, dot, value)?);
        }
        Ok(value.unwrap_or(Value::Nil))
    }

    fn command(&mut self, command: &Command, dot: &Value, piped: Option<Value>) -> Eval<Value> {
        self.step(command.pos)?;
        let Some(first) = command.operands.first() else {
            return fail(command.pos, "empty command");
        };
        let rest = &command.operands[1..];
        if let Term::Function(name) = &first.term {
            return self.call(name, rest, piped, dot, first.pos);
        }
        if first.chain.is_empty() {
            if !rest.is_empty() || piped.is_some() {
                return fail(
                    first.pos,
                    format!(
                        "can't give argument to non-function {}",
                        describe_term(&first.term)
                    ),
                );
            }
            if matches!(first.term, Term::Nil) {
                return fail(first.pos, "nil is not a command");
            }
            return self.term(&first.term, dot, first.pos);
        }
        let mut receiver = self.term(&first.term, dot, first.pos)?;
        let last = first.chain.len() - 1;
        for name in &first.chain[..last] {
            receiver = self.field(&receiver, name, Vec::new(), first.pos)?;
        }
        let mut args = Vec::with_capacity(rest.len() + 1);
        for operand in rest {
            args.push(self.operand(operand, dot)?);
        }
        args.extend(piped);
        self.field(&receiver, &first.chain[last], args, first.pos)
    }

    fn call(
        &mut self,
        name: &str,
        operands: &[Operand],
        piped: Option<Value>,
        dot: &Value,
        pos: usize,
    ) -> Eval<Value> {
        if name == "and" || name == "or" {
            // Go evaluates these lazily: the first deciding argument is the result.
            let mut last = None;
            for operand in operands {
                let value = self.operand(operand, dot)?;
                if value.is_true() != (name == "and") {
                    return Ok(value);
                }
                last = Some(value);
            }
            if let Some(value) = piped {
                return Ok(value);
            }
            return match last {
                Some(value) => Ok(value),
                None => fail(
                    pos,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ),
            };
        }
        let mut args = Vec::with_capacity(operands.len() + 1);
        if let Some(signature) = funcs::signature(name, self.funcs.dialect) {
            self.checked_args(name, signature, operands, piped, dot, pos, &mut args)?;
        } else {
            for operand in operands {
                args.push(self.operand(operand, dot)?);
            }
            args.extend(piped);
        }
        let result = funcs::call(name, args, &mut self.funcs).map_err(|message| Fail::At {
            pos,
            // Go checks the argument count before the call, so it says so without
            // "error calling".
            message: if message.starts_with("wrong number of args for ") {
                message
            } else {
                format!("error calling {name}: {}", strip_calling(&message, name))
            },
        })?;
        if result.text_len() > self.limits.max_output_bytes {
            return fail(
                pos,
                format!(
                    "{name} returned more than {} bytes",
                    self.limits.max_output_bytes
                ),
            );
        }
        Ok(result)
    }

    /// Evaluates a call's arguments as Go's `evalCall` does: the count first, then each
    /// argument against its parameter's type, an error located at that argument.
    #[allow(clippy::too_many_arguments)]
    fn checked_args(
        &mut self,
        name: &str,
        signature: funcs::Signature,
        operands: &[Operand],
        piped: Option<Value>,
        dot: &Value,
        pos: usize,
        args: &mut Vec<Value>,
    ) -> Eval<()> {
        let count = operands.len() + usize::from(piped.is_some());
        let fixed = signature.fixed.len();
        let count_ok = match signature.variadic {
            Some(_) => count >= fixed,
            None => count == fixed,
        };
        if !count_ok {
            let want = match signature.variadic {
                Some(_) => format!("at least {fixed}"),
                None => fixed.to_string(),
            };
            return fail(
                pos,
                format!("wrong number of args for {name}: want {want} got {count}"),
            );
        }
        let param_at = |index: usize| {
            signature
                .fixed
                .get(index)
                .copied()
                .or(signature.variadic)
                .unwrap_or(funcs::Param::Any)
        };
        for (index, operand) in operands.iter().enumerate() {
            let param = param_at(index);
            let value = match (&operand.term, operand.chain.is_empty()) {
                (Term::Nil, true) => {
                    if !param.nilable() {
                        return fail(
                            operand.pos,
                            format!("cannot assign nil to {}", param.go_type()),
                        );
                    }
                    Value::Nil
                }
                (Term::Int(_) | Term::Float(_) | Term::Str(_) | Term::Bool(_), true) => {
                    let value = self.term(&operand.term, dot, operand.pos)?;
                    let suits = match param {
                        funcs::Param::Any => true,
                        funcs::Param::Str => matches!(operand.term, Term::Str(_)),
                        funcs::Param::Typed { .. } => false,
                    };
                    if !suits {
                        let literal = describe_term(&operand.term);
                        return fail(
                            operand.pos,
                            match param {
                                funcs::Param::Str => format!("expected string; found {literal}"),
                                _ => format!(
                                    "can't handle {literal} for arg of type {}",
                                    param.go_type()
                                ),
                            },
                        );
                    }
                    value
                }
                _ => {
                    let value = self.operand(operand, dot)?;
                    check_assignable(&value, param, operand.pos)?;
                    value
                }
            };
            args.push(value);
        }
        if let Some(value) = piped {
            check_assignable(&value, param_at(count - 1), pos)?;
            args.push(value);
        }
        Ok(())
    }

    fn operand(&mut self, operand: &Operand, dot: &Value) -> Eval<Value> {
        let mut value = self.term(&operand.term, dot, operand.pos)?;
        for name in &operand.chain {
            value = self.field(&value, name, Vec::new(), operand.pos)?;
        }
        Ok(value)
    }

    fn term(&mut self, term: &Term, dot: &Value, pos: usize) -> Eval<Value> {
        Ok(match term {
            Term::Dot => dot.clone(),
            Term::Nil => Value::Nil,
            Term::Bool(b) => Value::Bool(*b),
            Term::Int(i) => Value::Int(*i),
            Term::Float(f) => Value::Float(*f),
            Term::Str(text) => Value::str(text.as_str()),
            Term::Function(name) => return self.call(name, &[], None, dot, pos),
            Term::Variable(name) => match self.vars.iter().rev().find(|(var, _)| var == name) {
                Some((_, value)) => value.clone(),
                None => return fail(pos, format!("undefined variable: {name}")),
            },
            Term::Pipeline(pipe) => self.pipeline(pipe, dot)?,
        })
    }

    /// `.name` on a value: Alertmanager's fields and methods, map keys, time methods.
    fn field(&mut self, receiver: &Value, name: &str, args: Vec<Value>, pos: usize) -> Eval<Value> {
        let no_args = |args: &[Value]| -> Eval<()> {
            if args.is_empty() {
                Ok(())
            } else {
                fail(
                    pos,
                    format!("wrong number of args for {name}: want 0 got {}", args.len()),
                )
            }
        };
        let field_args = |args: &[Value]| -> Eval<()> {
            if args.is_empty() {
                Ok(())
            } else {
                fail(
                    pos,
                    format!("{name} has arguments but cannot be invoked as function"),
                )
            }
        };
        let cannot = || {
            fail(
                pos,
                format!(
                    "can't evaluate field {name} in type {}",
                    receiver.type_name()
                ),
            )
        };
        match receiver {
            Value::Data(data) => {
                field_args(&args)?;
                Ok(match name {
                    "Receiver" => Value::Str(data.receiver.clone()),
                    "Status" => Value::str(data.status),
                    "Alerts" => Value::Alerts(data.alerts.clone()),
                    "GroupLabels" => Value::Kv(data.group_labels.clone()),
                    "CommonLabels" => Value::Kv(data.common_labels.clone()),
                    "CommonAnnotations" => Value::Kv(data.common_annotations.clone()),
                    "ExternalURL" => Value::Str(data.external_url.clone()),
                    "GroupKey" => Value::Str(data.group_key.clone()),
                    "NotificationReason" => Value::Str(data.notification_reason.clone()),
                    _ => return cannot(),
                })
            }
            Value::Alerts(alerts) => {
                let status = match name {
                    "Firing" => "firing",
                    "Resolved" => "resolved",
                    _ => return cannot(),
                };
                no_args(&args)?;
                let subset = alerts
                    .iter()
                    .filter(|alert| matches!(alert, Value::Alert(view) if view.status == status))
                    .cloned()
                    .collect();
                Ok(Value::List(Rc::new(subset)))
            }
            Value::Alert(alert) => {
                field_args(&args)?;
                Ok(match name {
                    "Status" => Value::str(alert.status),
                    "Labels" => Value::Kv(alert.labels.clone()),
                    "Annotations" => Value::Kv(alert.annotations.clone()),
                    "StartsAt" => Value::Time(alert.starts_at.clone()),
                    "EndsAt" => Value::Time(alert.ends_at.clone()),
                    "GeneratorURL" => Value::Str(alert.generator_url.clone()),
                    "Fingerprint" => Value::Str(alert.fingerprint.clone()),
                    _ => return cannot(),
                })
            }
            Value::Kv(map) => match name {
                "SortedPairs" => {
                    no_args(&args)?;
                    Ok(Value::Pairs(Rc::new(sorted_pairs(map))))
                }
                "Names" | "Values" => {
                    no_args(&args)?;
                    let pairs = sorted_pairs(map);
                    Ok(string_list(
                        pairs
                            .into_iter()
                            .map(|(n, v)| if name == "Names" { n } else { v }),
                    ))
                }
                "String" => {
                    no_args(&args)?;
                    Ok(Value::str(receiver.to_display()))
                }
                "Remove" => {
                    let [names] = args.as_slice() else {
                        return fail(
                            pos,
                            format!("wrong number of args for Remove: want 1 got {}", args.len()),
                        );
                    };
                    let removed = match names {
                        Value::List(items) => items
                            .iter()
                            .map(|item| item.as_text().map(str::to_string))
                            .collect::<Option<Vec<_>>>(),
                        Value::Nil => Some(Vec::new()),
                        _ => None,
                    };
                    let Some(removed) = removed else {
                        return fail(
                            pos,
                            format!(
                                "wrong type for value; expected []string; got {}",
                                names.type_name()
                            ),
                        );
                    };
                    let kept = map
                        .iter()
                        .filter(|(key, _)| !removed.contains(key))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    Ok(Value::Kv(Rc::new(kept)))
                }
                _ => {
                    if !args.is_empty() {
                        return fail(pos, format!("{name} is not a method but has arguments"));
                    }
                    // Alertmanager's missingkey=zero: a missing label is the empty string.
                    Ok(Value::str(map.get(name).map(String::as_str).unwrap_or("")))
                }
            },
            Value::Pairs(pairs) => {
                no_args(&args)?;
                match name {
                    "Names" => Ok(string_list(pairs.iter().map(|(n, _)| n.clone()))),
                    "Values" => Ok(string_list(pairs.iter().map(|(_, v)| v.clone()))),
                    "String" => Ok(Value::str(receiver.to_display())),
                    _ => cannot(),
                }
            }
            Value::Pair(pair) => {
                field_args(&args)?;
                match name {
                    "Name" => Ok(Value::str(pair.0.as_str())),
                    "Value" => Ok(Value::str(pair.1.as_str())),
                    _ => cannot(),
                }
            }
            Value::Time(time) => {
                if name == "Format" {
                    let [Value::Str(layout)] = args.as_slice() else {
                        return fail(pos, "Format takes one string argument");
                    };
                    return Ok(Value::str(timefmt::format_layout(time, layout)));
                }
                if name == "Sub" {
                    let [Value::Time(other)] = args.as_slice() else {
                        return fail(pos, "Sub takes one time.Time argument");
                    };
                    let nanos =
                        time.timestamp().as_nanosecond() - other.timestamp().as_nanosecond();
                    return Ok(Value::Duration(
                        nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                    ));
                }
                no_args(&args)?;
                let timestamp = time.timestamp();
                Ok(match name {
                    "Unix" => Value::Int(timestamp.as_second()),
                    "UnixMilli" => Value::Int((timestamp.as_nanosecond() / 1_000_000) as i64),
                    "UnixNano" => Value::Int(
                        timestamp
                            .as_nanosecond()
                            .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                            as i64,
                    ),
                    "IsZero" => Value::Bool(is_zero_time(time)),
                    "UTC" => Value::Time(Rc::new(timestamp.to_zoned_datetime(TimeZone::UTC))),
                    "Local" => {
                        Value::Time(Rc::new(timestamp.to_zoned_datetime(TimeZone::system())))
                    }
                    "String" => Value::str(timefmt::go_time_string(time)),
                    "Year" => Value::Int(i64::from(time.year())),
                    "YearDay" => Value::Int(i64::from(time.day_of_year())),
                    "Day" => Value::Int(i64::from(time.day())),
                    "Hour" => Value::Int(i64::from(time.hour())),
                    "Minute" => Value::Int(i64::from(time.minute())),
                    "Second" => Value::Int(i64::from(time.second())),
                    "Nanosecond" => Value::Int(i64::from(time.subsec_nanosecond())),
                    _ => return cannot(),
                })
            }
            Value::Duration(nanos) => {
                no_args(&args)?;
                Ok(match name {
                    "Seconds" => Value::Float(*nanos as f64 / 1e9),
                    "Minutes" => Value::Float(*nanos as f64 / 6e10),
                    "Hours" => Value::Float(*nanos as f64 / 3.6e12),
                    "Milliseconds" => Value::Int(nanos / 1_000_000),
                    "Microseconds" => Value::Int(nanos / 1_000),
                    "Nanoseconds" => Value::Int(*nanos),
                    "String" => Value::str(timefmt::go_duration_string(*nanos)),
                    _ => return cannot(),
                })
            }
            Value::StrMap(pairs) => {
                if !args.is_empty() {
                    return fail(pos, format!("{name} is not a method but has arguments"));
                }
                // Prometheus's missingkey=zero: a missing label is the empty string.
                Ok(Value::str(pairs_get(pairs, name).unwrap_or("")))
            }
            Value::AnyMap(pairs) => {
                if !args.is_empty() {
                    return fail(pos, format!("{name} is not a method but has arguments"));
                }
                // missingkey=zero on map[string]interface{}: the zero interface, `<no value>`.
                Ok(pairs
                    .iter()
                    .find(|(key, _)| key == name)
                    .map_or(Value::Nil, |(_, value)| value.clone()))
            }
            Value::Sample(sample) => {
                field_args(&args)?;
                match name {
                    "Labels" => Ok(Value::StrMap(sample.labels.clone())),
                    "Value" => Ok(Value::Float(sample.value)),
                    _ => cannot(),
                }
            }
            Value::RuleData(data) => {
                field_args(&args)?;
                match name {
                    "Labels" => Ok(Value::StrMap(data.labels.clone())),
                    "ExternalLabels" => Ok(Value::StrMap(data.external_labels.clone())),
                    "ExternalURL" => Ok(Value::Str(data.external_url.clone())),
                    "Value" => Ok(Value::Float(data.value)),
                    _ => cannot(),
                }
            }
            Value::Nil => fail(pos, format!("nil pointer evaluating interface {{}}.{name}")),
            _ => cannot(),
        }
    }
}

/// Go's `validateType`: a missing value suits only a type that can be nil.
fn check_assignable(value: &Value, param: funcs::Param, pos: usize) -> Eval<()> {
    if let Value::Nil = value {
        if param.nilable() {
            return Ok(());
        }
        return fail(pos, format!("invalid value; expected {}", param.go_type()));
    }
    if funcs::assignable(value, param) {
        return Ok(());
    }
    fail(
        pos,
        format!(
            "wrong type for value; expected {}; got {}",
            param.go_type(),
            value.type_name()
        ),
    )
}

fn string_list(items: impl Iterator<Item = String>) -> Value {
    Value::List(Rc::new(items.map(Value::str).collect()))
}

/// Function errors already saying "error calling <name>: " are not prefixed twice.
fn strip_calling<'m>(message: &'m str, name: &str) -> &'m str {
    message
        .strip_prefix(&format!("error calling {name}: "))
        .unwrap_or(message)
}

fn describe_term(term: &Term) -> String {
    match term {
        Term::Dot => ".".into(),
        Term::Nil => "nil".into(),
        Term::Bool(b) => b.to_string(),
        Term::Int(i) => i.to_string(),
        Term::Float(f) => f.to_string(),
        Term::Str(text) => format!("{text:?}"),
        Term::Function(name) => name.clone(),
        Term::Variable(name) => name.clone(),
        Term::Pipeline(_) => "(pipeline)".into(),
    }
}
