//! Evaluation of a parsed PromQL expression against a [`Queryable`].
//!
//! A query is evaluated step by step: at each step the whole expression tree is evaluated to a
//! vector (or scalar), and a range query stitches the per-step vectors into series. Before the
//! first step, every selector's series are fetched once for the whole time span the query needs
//! (including offsets, `@`, ranges and enclosing subqueries), so a step only binary-searches
//! samples that are already in memory.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp;
use promql_parser::parser::{
    self, AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};

use super::annotations::Annotations;
use super::limits::{self, Budget, Limits};
use super::memo::{LabelsIndex, LabelsMemo};
use super::storage::{MatchKind, Matcher, Queryable, SeriesData, StorageError};
use super::value::{Labels, METRIC_NAME, Point, Sample, Series, Value, is_stale_nan};
use super::{aggregate, binary, functions};

/// A failed query, with Prometheus's error type and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse or is not valid; Prometheus's `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed; Prometheus's `execution`.
    #[error("{0}")]
    Execution(String),
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    #[error("query timed out in query execution")]
    Timeout,
    /// The caller gave up on the answer (Prometheus's `canceled`).
    #[error("query was canceled in query execution")]
    Canceled,
    /// The deadline passed while the query waited for a slot (`--query.max-concurrency`).
    #[error("query timed out in query queue")]
    QueueTimeout,
    #[error("query was canceled in query queue")]
    QueueCanceled,
    #[error("{0}")]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// The `errorType` of Prometheus's API envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples | QueryError::Storage(_) => {
                "execution"
            }
            QueryError::Timeout | QueryError::QueueTimeout => "timeout",
            QueryError::Canceled | QueryError::QueueCanceled => "canceled",
        }
    }
}

pub(crate) fn exec_err(msg: impl Into<String>) -> QueryError {
    QueryError::Execution(msg.into())
}

pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// A query's value and its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// Engine settings; one engine serves many queries.
#[derive(Debug, Clone)]
pub struct Engine {
    /// How far back an instant selector looks for a sample (Prometheus default 5m).
    pub lookback_delta_ms: i64,
    /// Step of a subquery that names none, when the query is an instant query.
    pub no_step_subquery_interval_ms: i64,
    pub limits: Limits,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            lookback_delta_ms: 5 * 60 * 1000,
            no_step_subquery_interval_ms: 60 * 1000,
            limits: Limits::default(),
        }
    }
}

pub use super::parse::parse_query;

impl Engine {
    pub fn instant_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse_query(query)?;
        self.instant_expr(storage, &expr, t_ms)
    }

    pub fn instant_expr(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        t_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let mut ev = Evaluator::new(
            self,
            storage,
            t_ms,
            t_ms,
            self.no_step_subquery_interval_ms,
            false,
        );
        ev.prepare(
            expr,
            t_ms,
            t_ms,
            Grid {
                first: t_ms,
                step: 1,
                last: t_ms,
            },
        )?;
        let value = match ev.eval(expr, t_ms)? {
            Val::Scalar(v) => Value::Scalar { t: t_ms, v },
            Val::Str(s) => Value::String { t: t_ms, v: s },
            Val::Vector(mut vector) => {
                for s in &mut vector {
                    s.t = t_ms;
                }
                Value::Vector(cleanup_vector(vector)?)
            }
            Val::Matrix(m) => Value::Matrix(cleanup_matrix(m)?),
        };
        Ok(QueryResult {
            value,
            annotations: ev.annotations,
        })
    }

    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse_query(query)?;
        self.range_expr(storage, &expr, start_ms, end_ms, step_ms)
    }

    pub fn range_expr(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        limits::check_resolution(start_ms, end_ms, step_ms)?;
        match expr.value_type() {
            parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
            other => {
                let name = match other {
                    parser::value::ValueType::Matrix => "range vector",
                    _ => "string",
                };
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let mut ev = Evaluator::new(self, storage, start_ms, end_ms, step_ms, true);
        ev.prepare(
            expr,
            start_ms,
            end_ms,
            Grid {
                first: start_ms,
                step: step_ms,
                last: end_ms,
            },
        )?;
        // Series are keyed by their labels after delayed name removal, so two series that only
        // differed by a dropped name merge when they do not overlap in time. Label sets get
        // dense ids (by identity first, see `memo.rs`) so a step does not hash them again.
        let mut index = LabelsIndex::default();
        let mut position_of_id: Vec<u32> = Vec::new();
        let mut series: Vec<Series> = Vec::new();
        let mut total_points = 0usize;
        let mut t = start_ms;
        while t <= end_ms {
            ev.budget.check_deadline()?;
            let vector = match ev.eval(expr, t)? {
                Val::Scalar(v) => vec![Sample {
                    labels: Labels::new(),
                    t,
                    v,
                    drop_name: false,
                }],
                Val::Vector(vector) => vector,
                _ => return Err(exec_err("range query evaluated to a non-vector value")),
            };
            for s in vector {
                let id = if s.drop_name {
                    index.id_without_name(&s.labels)
                } else {
                    index.id(&s.labels)
                } as usize;
                if position_of_id.len() <= id {
                    position_of_id.resize(index.len().max(id + 1), u32::MAX);
                }
                if position_of_id[id] == u32::MAX {
                    position_of_id[id] = u32::try_from(series.len()).unwrap_or(u32::MAX);
                    series.push(Series {
                        labels: index.labels(id as u32).clone(),
                        points: Vec::new(),
                        drop_name: false,
                    });
                }
                let entry = &mut series[position_of_id[id] as usize];
                if entry.points.last().is_some_and(|p| p.0 == t) {
                    return Err(exec_err(DUPLICATE_LABELSET));
                }
                entry.points.push((t, s.v));
                total_points += 1;
            }
            ev.budget.check_samples(total_points)?;
            t = match t.checked_add(step_ms) {
                Some(next) => next,
                None => break,
            };
        }
        let matrix = cleanup_matrix(series)?;
        Ok(QueryResult {
            value: Value::Matrix(matrix),
            annotations: ev.annotations,
        })
    }
}

/// Applies delayed `__name__` removal and rejects duplicate label sets.
fn cleanup_vector(mut vector: Vec<Sample>) -> Result<Vec<Sample>, QueryError> {
    for s in &mut vector {
        if s.drop_name {
            s.labels.remove(METRIC_NAME);
            s.drop_name = false;
        }
    }
    check_duplicates(&vector)?;
    Ok(vector)
}

pub(crate) fn check_duplicates(vector: &[Sample]) -> Result<(), QueryError> {
    if vector.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(vector.len());
    for s in vector {
        if !seen.insert(&s.labels) {
            return Err(exec_err(DUPLICATE_LABELSET));
        }
    }
    Ok(())
}

fn cleanup_matrix(mut matrix: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    for s in &mut matrix {
        if s.drop_name {
            s.labels.remove(METRIC_NAME);
            s.drop_name = false;
        }
    }
    matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
    if matrix.windows(2).any(|w| w[0].labels == w[1].labels) {
        return Err(exec_err(DUPLICATE_LABELSET));
    }
    Ok(matrix)
}

/// A value during evaluation of one step.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// The interval a range vector covers: `(end - range, end]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeWindow {
    pub end: i64,
    pub range: i64,
}

impl RangeWindow {
    pub fn start(&self) -> i64 {
        self.end.saturating_sub(self.range)
    }
}

/// The evaluation times of an expression node: `first`, `first + step`, … up to `last`. A
/// range query evaluates its expression on such a grid, and a subquery its inner expression on
/// one aligned to its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub first: i64,
    pub step: i64,
    pub last: i64,
}

impl Grid {
    /// How many times the grid holds.
    pub fn len(&self) -> usize {
        if self.last < self.first || self.step <= 0 {
            return 0;
        }
        usize::try_from((self.last - self.first) / self.step)
            .map_or(usize::MAX, |n| n.saturating_add(1))
    }

    /// The position of `t` on the grid, if it is one of its times.
    pub fn position(&self, t: i64) -> Option<usize> {
        if t < self.first || t > self.last || self.step <= 0 {
            return None;
        }
        let since = t - self.first;
        (since % self.step == 0).then(|| usize::try_from(since / self.step).ok())?
    }

    /// The grid's `k`-th time.
    pub fn time(&self, k: usize) -> i64 {
        self.first
            .saturating_add((k as i64).saturating_mul(self.step))
    }
}

/// A range function's results over a matrix selector at every time of the selector's grid,
/// computed in one pass over each series' samples (see `functions/range.rs`).
pub(crate) struct RangeColumns {
    pub function: String,
    pub grid: Grid,
    /// Per grid time: (series index, value) for the series with a result, in series order.
    pub steps: Vec<Vec<(u32, f64)>>,
    /// Per grid time: the samples in the windows, as the per-step path counts them.
    pub window_points: Vec<usize>,
    /// Metric names that do not look like counters, with the grid times where one of their
    /// series had samples (for the `rate`/`increase` info annotation).
    pub non_counters: Vec<(String, Vec<bool>)>,
}

/// A range function over a subquery at every outer time (see `functions/range.rs`): the
/// columns index `labels` and `drop_name`, one entry per inner series.
pub(crate) struct SubqueryColumns {
    pub columns: RangeColumns,
    pub labels: Vec<Labels>,
    pub drop_name: Vec<bool>,
}

/// Groups of an aggregation: ids by group key, found by label-set identity per sample.
#[derive(Default)]
pub(crate) struct GroupMemo {
    pub group_of: LabelsMemo<u32>,
    pub by_key: HashMap<Vec<u8>, u32>,
    pub labels: Vec<Labels>,
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => duration_ms(d).saturating_neg(),
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => duration_ms(&e.duration()).saturating_neg(),
    }
}

fn convert_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, QueryError> {
    let kind = match m.op {
        MatchOp::Equal => MatchKind::Equal,
        MatchOp::NotEqual => MatchKind::NotEqual,
        MatchOp::Re(_) => MatchKind::Regex,
        MatchOp::NotRe(_) => MatchKind::NotRegex,
    };
    Matcher::new(kind, &m.name, &m.value).map_err(|e| QueryError::BadData(e.to_string()))
}

fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::BadData(
            "\"or\" in label matchers is not supported".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    let mut has_name = false;
    for m in &vs.matchers.matchers {
        has_name |= m.name == METRIC_NAME;
        out.push(convert_matcher(m)?);
    }
    if let (Some(name), false) = (&vs.name, has_name) {
        out.push(Matcher::new(MatchKind::Equal, METRIC_NAME, name)?);
    }
    Ok(out)
}

/// The index of the first sample after `t` (as `partition_point(|p| p.0 <= t)`), scanning
/// forward from `hint` when the answer lies a little past it, else by binary search.
fn index_after(samples: &[Point], hint: usize, t: i64) -> usize {
    const SHORT_SCAN: usize = 16;
    let hint = hint.min(samples.len());
    if hint > 0 && samples[hint - 1].0 > t {
        return samples.partition_point(|p| p.0 <= t);
    }
    let mut i = hint;
    while i < samples.len() && samples[i].0 <= t {
        i += 1;
        if i - hint >= SHORT_SCAN {
            return i + samples[i..].partition_point(|p| p.0 <= t);
        }
    }
    i
}

/// A subquery's inner step: its time, the vector it evaluated to, and each sample's slot (see
/// `fill_subquery_window`), found once when the step is evaluated.
type InnerStep = (i64, Rc<Vec<Sample>>, Rc<Vec<u32>>);

/// Bound on the points reserved up front for one series of a subquery window.
const MAX_POINTS_PER_WINDOW_HINT: usize = 4096;

/// State of one query's evaluation.
pub(crate) struct Evaluator<'a> {
    storage: &'a dyn Queryable,
    pub start: i64,
    pub end: i64,
    /// The step of a range query, or the default subquery step for an instant query.
    pub interval: i64,
    pub lookback: i64,
    pub range_query: bool,
    /// Fetched series per selector node (keyed by the node's address, stable while the AST is
    /// borrowed).
    selected: HashMap<usize, Vec<SeriesData>>,
    /// Per selector node and series, where the last step's window began and ended in its
    /// samples: steps move forward, so the next window is found by a short scan from there
    /// instead of two binary searches that miss the cache on every big selector.
    cursors: HashMap<usize, Vec<(usize, usize)>>,
    /// Per subquery node, its inner steps already evaluated, by ascending time.
    subquery_steps: HashMap<usize, VecDeque<InnerStep>>,
    /// Per subquery node, ids of the inner series and their slot in the current window's
    /// matrix, kept across windows.
    subquery_series: HashMap<usize, (LabelsIndex, Vec<u32>)>,
    /// Per matrix selector node, the grid of times it is evaluated at.
    grids: HashMap<usize, Grid>,
    /// Per matrix selector node, its range function precomputed over its grid.
    pub range_columns: HashMap<usize, Rc<RangeColumns>>,
    /// Per subquery node, the grid of outer times it is evaluated at.
    subquery_grids: HashMap<usize, Grid>,
    /// Per subquery node, the range function over it precomputed over its outer grid.
    pub subquery_columns: HashMap<usize, Rc<SubqueryColumns>>,
    /// Per aggregation node, its groups.
    pub group_memos: HashMap<usize, GroupMemo>,
    /// Per binary operation node, its match signatures and result labels.
    pub binary_memos: HashMap<usize, binary::BinaryMemo>,
    pub annotations: Annotations,
    pub budget: Budget,
}

pub(crate) fn node_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// A subquery node's key in the per-node maps (its address, stable while the AST is borrowed).
pub(crate) fn subquery_key(sq: &SubqueryExpr) -> usize {
    sq as *const SubqueryExpr as usize
}

impl<'a> Evaluator<'a> {
    fn new(
        engine: &Engine,
        storage: &'a dyn Queryable,
        start: i64,
        end: i64,
        interval: i64,
        range_query: bool,
    ) -> Self {
        Evaluator {
            storage,
            start,
            end,
            interval,
            lookback: engine.lookback_delta_ms,
            range_query,
            selected: HashMap::new(),
            subquery_steps: HashMap::new(),
            subquery_series: HashMap::new(),
            grids: HashMap::new(),
            range_columns: HashMap::new(),
            subquery_grids: HashMap::new(),
            subquery_columns: HashMap::new(),
            group_memos: HashMap::new(),
            binary_memos: HashMap::new(),
            cursors: HashMap::new(),
            annotations: Annotations::default(),
            budget: Budget::new(&engine.limits),
        }
    }

    fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start),
            Some(AtModifier::End) => Some(self.end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// The time a selector or subquery with `at` and `offset` looks at, when evaluated at `t`.
    pub(crate) fn effective_time(
        &self,
        t: i64,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
    ) -> i64 {
        self.at_time(at)
            .unwrap_or(t)
            .saturating_sub(offset_ms(offset))
    }

    pub(crate) fn subquery_step(&self, sq: &SubqueryExpr) -> i64 {
        match &sq.step {
            Some(s) if !s.is_zero() => duration_ms(s),
            _ => self.interval,
        }
    }

    /// Fetches every selector's series for the time span `[s, e]` of evaluation times, and
    /// notes each matrix selector's grid of evaluation times.
    pub(crate) fn prepare(
        &mut self,
        expr: &Expr,
        s: i64,
        e: i64,
        grid: Grid,
    ) -> Result<(), QueryError> {
        match expr {
            Expr::VectorSelector(vs) => self.select(vs, s, e, self.lookback),
            Expr::MatrixSelector(ms) => {
                self.grids.insert(node_key(&ms.vs), grid);
                self.select(&ms.vs, s, e, duration_ms(&ms.range))
            }
            Expr::Subquery(sq) => {
                let (s, e, grid) = match self.at_time(&sq.at) {
                    Some(at) => (
                        at,
                        at,
                        Grid {
                            first: at,
                            step: 1,
                            last: at,
                        },
                    ),
                    None => (s, e, grid),
                };
                self.subquery_grids.insert(subquery_key(sq), grid);
                let off = offset_ms(&sq.offset);
                let range = duration_ms(&sq.range);
                let step = self.subquery_step(sq).max(1);
                let inner_s = s.saturating_sub(off).saturating_sub(range);
                let inner_e = e.saturating_sub(off);
                // Inner steps are absolute multiples of the step after a window's open start
                // (as `eval_subquery` walks them); when the outer times are not a grid the
                // inner grid is empty, and nothing is precomputed below it.
                let inner_grid = if grid.len() > 0 {
                    Grid {
                        first: inner_s
                            .div_euclid(step)
                            .saturating_add(1)
                            .saturating_mul(step),
                        step,
                        last: inner_e,
                    }
                } else {
                    grid
                };
                self.prepare(&sq.expr, inner_s, inner_e, inner_grid)
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.prepare(p, s, e, grid)?;
                }
                self.prepare(&a.expr, s, e, grid)
            }
            Expr::Unary(u) => self.prepare(&u.expr, s, e, grid),
            Expr::Binary(b) => {
                self.prepare(&b.lhs, s, e, grid)?;
                self.prepare(&b.rhs, s, e, grid)
            }
            Expr::Paren(p) => self.prepare(&p.expr, s, e, grid),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.prepare(a, s, e, grid)?;
                }
                Ok(())
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::Extension(_) => Err(QueryError::BadData(
                "extension expressions are not supported".into(),
            )),
        }
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        s: i64,
        e: i64,
        range: i64,
    ) -> Result<(), QueryError> {
        let (s, e) = match self.at_time(&vs.at) {
            Some(at) => (at, at),
            None => (s, e),
        };
        let off = offset_ms(&vs.offset);
        let matchers = selector_matchers(vs)?;
        let series = self.storage.select(
            &matchers,
            s.saturating_sub(off).saturating_sub(range),
            e.saturating_sub(off),
        )?;
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        self.budget.check_samples(samples)?;
        self.selected.insert(node_key(vs), series);
        Ok(())
    }

    /// The grid of outer times a subquery is evaluated at.
    pub(crate) fn subquery_grid(&self, sq: &SubqueryExpr) -> Option<Grid> {
        self.subquery_grids.get(&subquery_key(sq)).copied()
    }

    /// The grid of times a matrix selector is evaluated at.
    pub(crate) fn grid_of(&self, vs: &VectorSelector) -> Option<Grid> {
        self.grids.get(&node_key(vs)).copied()
    }

    pub(crate) fn series_for(&self, vs: &VectorSelector) -> Result<&[SeriesData], QueryError> {
        self.selected
            .get(&node_key(vs))
            .map(|v| v.as_slice())
            .ok_or_else(|| exec_err("internal error: selector was not prepared"))
    }

    pub(crate) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Val, QueryError> {
        self.budget.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(mut vector) => {
                    for s in &mut vector {
                        s.v = -s.v;
                        s.t = t;
                        s.drop_name = true;
                    }
                    Ok(Val::Vector(vector))
                }
                _ => Err(exec_err(
                    "unary expression only allowed on expressions of type scalar or instant vector",
                )),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, t)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let (m, _) = self.eval_range(expr, t)?;
                Ok(Val::Matrix(m))
            }
            Expr::Call(call) => functions::call(self, call, t),
            Expr::Aggregate(agg) => aggregate::eval(self, agg, t),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Extension(_) => Err(QueryError::BadData(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates to an instant vector, or fails with a type error.
    pub(crate) fn eval_vector(&mut self, expr: &Expr, t: i64) -> Result<Vec<Sample>, QueryError> {
        match self.eval(expr, t)? {
            Val::Vector(v) => Ok(v),
            other => Err(exec_err(format!(
                "expected instant vector, got {}",
                val_type(&other)
            ))),
        }
    }

    pub(crate) fn eval_scalar(&mut self, expr: &Expr, t: i64) -> Result<f64, QueryError> {
        match self.eval(expr, t)? {
            Val::Scalar(v) => Ok(v),
            other => Err(exec_err(format!(
                "expected scalar, got {}",
                val_type(&other)
            ))),
        }
    }

    pub(crate) fn eval_string(&mut self, expr: &Expr, t: i64) -> Result<String, QueryError> {
        match self.eval(expr, t)? {
            Val::Str(v) => Ok(v),
            other => Err(exec_err(format!(
                "expected string, got {}",
                val_type(&other)
            ))),
        }
    }

    fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        t: i64,
    ) -> Result<Vec<Sample>, QueryError> {
        let ref_t = self.effective_time(t, &vs.at, &vs.offset);
        let key = node_key(vs);
        let series = self
            .selected
            .get(&key)
            .ok_or_else(|| exec_err("internal error: selector was not prepared"))?;
        let cursors = self
            .cursors
            .entry(key)
            .or_insert_with(|| vec![(0, 0); series.len()]);
        let mut out = Vec::with_capacity(series.len());
        for (s, cursor) in series.iter().zip(cursors.iter_mut()) {
            let idx = index_after(&s.samples, cursor.1, ref_t);
            cursor.1 = idx;
            if idx == 0 {
                continue;
            }
            let (st, sv) = s.samples[idx - 1];
            if st <= ref_t.saturating_sub(self.lookback) || is_stale_nan(sv) {
                continue;
            }
            out.push(Sample {
                labels: s.labels.clone(),
                t: st,
                v: sv,
                drop_name: false,
            });
        }
        Ok(out)
    }

    /// Evaluates a matrix selector or subquery (possibly in parentheses) at `t`.
    pub(crate) fn eval_range(
        &mut self,
        expr: &Expr,
        t: i64,
    ) -> Result<(Vec<Series>, RangeWindow), QueryError> {
        match expr {
            Expr::Paren(p) => self.eval_range(&p.expr, t),
            Expr::MatrixSelector(ms) => {
                let end = self.effective_time(t, &ms.vs.at, &ms.vs.offset);
                let window = RangeWindow {
                    end,
                    range: duration_ms(&ms.range),
                };
                let series = self.series_for(&ms.vs)?;
                let mut out = Vec::new();
                let mut total = 0usize;
                for s in series {
                    let lo = s.samples.partition_point(|p| p.0 <= window.start());
                    let hi = s.samples.partition_point(|p| p.0 <= end);
                    if lo >= hi {
                        continue;
                    }
                    let points: Vec<Point> = s.samples[lo..hi]
                        .iter()
                        .copied()
                        .filter(|p| !is_stale_nan(p.1))
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    total += points.len();
                    out.push(Series {
                        labels: s.labels.clone(),
                        points,
                        drop_name: false,
                    });
                }
                self.budget.check_samples(total)?;
                Ok((out, window))
            }
            Expr::Subquery(sq) => self.eval_subquery(sq, t),
            _ => Err(exec_err("expected range vector")),
        }
    }

    /// The window a matrix selector covers when evaluated at `t`.
    pub(crate) fn matrix_window(&self, ms: &MatrixSelector, t: i64) -> RangeWindow {
        RangeWindow {
            end: self.effective_time(t, &ms.vs.at, &ms.vs.offset),
            range: duration_ms(&ms.range),
        }
    }

    /// Calls `f` with the labels and in-window points (stale markers left out) of each series
    /// of a matrix selector, skipping series without points, in series order. Unlike
    /// [`Evaluator::eval_range`] it copies nothing when the window holds no stale marker: a
    /// range function over a big selector would otherwise copy every window at every step.
    pub(crate) fn walk_matrix_selector(
        &mut self,
        ms: &MatrixSelector,
        window: RangeWindow,
        mut f: impl FnMut(&Labels, &[Point]),
    ) -> Result<(), QueryError> {
        let key = node_key(&ms.vs);
        let series = self
            .selected
            .get(&key)
            .ok_or_else(|| exec_err("internal error: selector was not prepared"))?;
        let cursors = self
            .cursors
            .entry(key)
            .or_insert_with(|| vec![(0, 0); series.len()]);
        let mut without_stale: Vec<Point> = Vec::new();
        let mut total = 0usize;
        for (s, cursor) in series.iter().zip(cursors.iter_mut()) {
            let lo = index_after(&s.samples, cursor.0, window.start());
            let hi = index_after(&s.samples, cursor.1.max(lo), window.end);
            *cursor = (lo, hi);
            if lo >= hi {
                continue;
            }
            let mut points = &s.samples[lo..hi];
            if points.iter().any(|p| is_stale_nan(p.1)) {
                without_stale.clear();
                without_stale.extend(points.iter().copied().filter(|p| !is_stale_nan(p.1)));
                points = &without_stale;
            }
            if points.is_empty() {
                continue;
            }
            total += points.len();
            f(&s.labels, points);
        }
        self.budget.check_samples(total)
    }

    fn eval_subquery(
        &mut self,
        sq: &SubqueryExpr,
        t: i64,
    ) -> Result<(Vec<Series>, RangeWindow), QueryError> {
        let end = self.effective_time(t, &sq.at, &sq.offset);
        let range = duration_ms(&sq.range);
        let step = self.subquery_step(sq).max(1);
        let window = RangeWindow { end, range };
        // The first step-aligned time strictly after the window's (open) start.
        let mut ts = window
            .start()
            .div_euclid(step)
            .saturating_add(1)
            .saturating_mul(step);
        let node = subquery_key(sq);
        // Inner steps are aligned to absolute multiples of the step, so consecutive outer steps
        // share all but a few of them: each is evaluated once and kept while later windows can
        // still use it (evaluation times only increase within one enclosing evaluation).
        if let Some(cached) = self.subquery_steps.get_mut(&node) {
            while cached
                .front()
                .is_some_and(|(at, _, _)| *at <= window.start())
            {
                cached.pop_front();
            }
        }
        // Inner series get ids kept across windows (found by label-set identity), and a slot per
        // id in this window's matrix; the slots are cleared again before returning.
        let (mut index, mut slot_of) = self.subquery_series.remove(&node).unwrap_or_default();
        let mut out: Vec<Series> = Vec::new();
        let mut out_slots: Vec<usize> = Vec::new();
        let result = self.fill_subquery_window(
            sq,
            node,
            &mut ts,
            end,
            step,
            &mut index,
            &mut slot_of,
            &mut out,
            &mut out_slots,
        );
        for slot in out_slots {
            slot_of[slot] = u32::MAX;
        }
        self.subquery_series.insert(node, (index, slot_of));
        result?;
        Ok((out, window))
    }

    /// Appends the inner steps `ts..=end` of a subquery window to `out`.
    #[allow(clippy::too_many_arguments)]
    fn fill_subquery_window(
        &mut self,
        sq: &SubqueryExpr,
        node: usize,
        ts: &mut i64,
        end: i64,
        step: i64,
        index: &mut LabelsIndex,
        slot_of: &mut Vec<u32>,
        out: &mut Vec<Series>,
        out_slots: &mut Vec<usize>,
    ) -> Result<(), QueryError> {
        let mut total = 0usize;
        while *ts <= end {
            let ts_now = *ts;
            let cached = self.subquery_steps.get(&node).and_then(|cached| {
                cached
                    .binary_search_by_key(&ts_now, |(at, _, _)| *at)
                    .ok()
                    .map(|i| (Rc::clone(&cached[i].1), Rc::clone(&cached[i].2)))
            });
            let (vector, slots) = match cached {
                Some(cached) => cached,
                None => {
                    let vector = self.eval_subquery_step(sq, ts_now)?;
                    // A series whose name is still to be dropped is distinct from one without.
                    let slots: Vec<u32> = vector
                        .iter()
                        .map(|s| index.id(&s.labels).saturating_mul(2) + u32::from(s.drop_name))
                        .collect();
                    let (vector, slots) = (Rc::new(vector), Rc::new(slots));
                    let cached = self.subquery_steps.entry(node).or_default();
                    if cached.back().is_none_or(|(at, _, _)| *at < ts_now) {
                        cached.push_back((ts_now, Rc::clone(&vector), Rc::clone(&slots)));
                    }
                    (vector, slots)
                }
            };
            // Points per series in this window, so a series' points are allocated once.
            let window_steps = usize::try_from((end - ts_now) / step)
                .unwrap_or(0)
                .saturating_add(1)
                .min(MAX_POINTS_PER_WINDOW_HINT);
            for (s, &slot) in vector.iter().zip(slots.iter()) {
                let slot = slot as usize;
                if slot_of.len() <= slot {
                    slot_of.resize((index.len() * 2).max(slot + 1), u32::MAX);
                }
                if slot_of[slot] == u32::MAX {
                    slot_of[slot] = u32::try_from(out.len()).unwrap_or(u32::MAX);
                    out_slots.push(slot);
                    out.push(Series {
                        labels: s.labels.clone(),
                        points: Vec::with_capacity(window_steps),
                        drop_name: s.drop_name,
                    });
                }
                out[slot_of[slot] as usize].points.push((ts_now, s.v));
                total += 1;
            }
            self.budget.check_samples(total)?;
            self.budget.check_deadline()?;
            *ts = match ts_now.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(())
    }

    /// The subquery's inner expression at one inner step, as a vector.
    pub(crate) fn eval_subquery_step(
        &mut self,
        sq: &SubqueryExpr,
        ts: i64,
    ) -> Result<Vec<Sample>, QueryError> {
        match self.eval(&sq.expr, ts)? {
            Val::Scalar(v) => Ok(vec![Sample {
                labels: Labels::new(),
                t: ts,
                v,
                drop_name: false,
            }]),
            Val::Vector(v) => Ok(v),
            other => Err(exec_err(format!(
                "subquery is only allowed on instant vector, got {}",
                val_type(&other)
            ))),
        }
    }

    /// Evaluates a selector keeping each sample's own timestamp (for `timestamp()`), or any
    /// other expression normally.
    pub(crate) fn eval_vector_keep_timestamps(
        &mut self,
        expr: &Expr,
        t: i64,
    ) -> Result<Vec<Sample>, QueryError> {
        match expr {
            Expr::Paren(p) => self.eval_vector_keep_timestamps(&p.expr, t),
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs, t),
            other => {
                let mut v = self.eval_vector(other, t)?;
                for s in &mut v {
                    s.t = t;
                }
                Ok(v)
            }
        }
    }
}

pub(crate) fn val_type(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::memory::MemoryStorage;
    use crate::promql::value::stale_nan;

    fn storage() -> MemoryStorage {
        let mut s = MemoryStorage::new();
        let a = Labels::from_pairs([("__name__", "req_total"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "req_total"), ("job", "b")]);
        for i in 0..=10 {
            s.append(&a, i * 60_000, (i * 60) as f64);
            s.append(&b, i * 60_000, (i * 120) as f64);
        }
        s.append(&b, 11 * 60_000, stale_nan());
        s
    }

    fn vector(r: &QueryResult) -> Vec<(String, f64)> {
        match &r.value {
            Value::Vector(v) => {
                let mut out: Vec<(String, f64)> =
                    v.iter().map(|s| (s.labels.to_string(), s.v)).collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                out
            }
            other => panic!("not a vector: {other:?}"),
        }
    }

    #[test]
    fn rate_and_aggregation() {
        let s = storage();
        let e = Engine::default();
        let r = e
            .instant_query(&s, "sum by (job) (rate(req_total[5m]))", 600_000)
            .unwrap();
        assert_eq!(
            vector(&r),
            vec![
                ("{job=\"a\"}".to_string(), 1.0),
                ("{job=\"b\"}".to_string(), 2.0)
            ]
        );
    }

    #[test]
    fn staleness_marker_ends_series() {
        let s = storage();
        let e = Engine::default();
        let r = e.instant_query(&s, "req_total", 11 * 60_000).unwrap();
        assert_eq!(
            vector(&r),
            vec![("{__name__=\"req_total\", job=\"a\"}".to_string(), 600.0)]
        );
    }

    #[test]
    fn range_query_builds_series() {
        let s = storage();
        let e = Engine::default();
        let r = e
            .range_query(&s, "req_total{job=\"a\"} * 2", 0, 120_000, 60_000)
            .unwrap();
        let Value::Matrix(m) = r.value else {
            panic!("not a matrix")
        };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].labels.to_string(), "{job=\"a\"}");
        assert_eq!(
            m[0].points,
            vec![(0, 0.0), (60_000, 120.0), (120_000, 240.0)]
        );
    }

    #[test]
    fn errors_are_typed() {
        let s = storage();
        let e = Engine::default();
        let err = e
            .range_query(&s, "req_total[5m]", 0, 60_000, 1000)
            .unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
        let err = e.instant_query(&s, "sum(", 0).unwrap_err();
        assert_eq!(err.error_type(), "bad_data");
        let err = e
            .range_query(&s, "req_total", 0, 100_000_000, 1)
            .unwrap_err();
        assert!(err.to_string().contains("11,000 points"));
    }

    #[test]
    fn max_samples_is_enforced() {
        let s = storage();
        let mut e = Engine::default();
        e.limits.max_samples = 5;
        let err = e
            .instant_query(&s, "count_over_time(req_total[10m])", 600_000)
            .unwrap_err();
        assert_eq!(err, QueryError::TooManySamples);
    }

    #[test]
    fn huge_offsets_do_not_panic() {
        let s = storage();
        let e = Engine::default();
        assert!(
            e.instant_query(&s, "req_total offset 100000000y", 0)
                .is_ok()
        );
        assert!(
            e.instant_query(&s, "rate(req_total[100000000y:1000000y])", 0)
                .is_ok()
        );
    }
}
