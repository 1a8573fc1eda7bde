//! A zero-copy reader for the remote-write protobuf messages: `prometheus.WriteRequest`
//! (1.0) and `io.prometheus.write.v2.Request` (2.0).
//!
//! prost decodes every label into two owned `String`s and every series into its own `Vec`s;
//! this reader borrows label names and values from the decompressed buffer and puts the whole
//! request into a handful of flat vectors (series hold ranges into them), so a request costs a
//! few allocations whatever its size. It follows prost's wire rules (unknown fields skipped,
//! packed and unpacked repeated scalars both accepted, last value wins for singular fields,
//! strings checked as UTF-8), and the tests check it against prost's encoding.
//!
//! Everything a request can make us allocate is bounded by [`MAX_ENTRIES`] on top of the
//! decompressed size limit the caller enforces.
#![deny(clippy::disallowed_methods)]

use std::fmt;
use std::ops::Range;

/// The most series, labels, samples, histograms, exemplars and metadata entries (together)
/// one request may hold. An empty sample costs two bytes on the wire but sixteen once decoded,
/// so the decompressed size limit alone would let a request take eight times its size.
pub const MAX_ENTRIES: usize = 4_000_000;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid message: what is wrong, where (byte offset) and in which message.
    Malformed {
        what: String,
        offset: usize,
        message: &'static str,
    },
    /// More entries than [`MAX_ENTRIES`].
    TooManyEntries,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed {
                what,
                offset,
                message,
            } => write!(f, "protobuf: {what} at byte {offset} (in {message})"),
            DecodeError::TooManyEntries => write!(
                f,
                "the request holds more than {MAX_ENTRIES} series, labels, samples, histograms, exemplars and metadata entries"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// One float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp: i64,
    pub value: f64,
}

/// One label pair, borrowed from the request's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelPair<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// One exemplar; its labels are `Request::exemplar_labels[labels]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Range<usize>,
    pub value: f64,
    pub timestamp: i64,
}

/// A 2.0 series' metadata, its references resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesMetadata<'a> {
    /// `MetricType` (0 unspecified, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
    /// 5 summary, 6 info, 7 stateset); other values are kept as sent.
    pub metric_type: i32,
    pub help: &'a str,
    pub unit: &'a str,
}

/// A 1.0 request's `MetricMetadata` entry (per metric family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyMetadata<'a> {
    pub metric_type: i32,
    pub family: &'a str,
    pub help: &'a str,
    pub unit: &'a str,
}

/// One series of a request: ranges into the request's flat vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<'a> {
    /// Into `Request::labels`, in the order sent.
    pub labels: Range<usize>,
    /// Into `Request::samples`.
    pub samples: Range<usize>,
    /// Into `Request::exemplars`.
    pub exemplars: Range<usize>,
    /// Native histogram samples: counted only (their contents are not read).
    pub histograms: usize,
    /// 2.0 only.
    pub metadata: Option<SeriesMetadata<'a>>,
    /// 2.0 only; 0 when not set.
    pub created_timestamp: i64,
    /// 2.0 only: why the series' symbol references could not be resolved (its labels and
    /// exemplars are then empty and it must be refused).
    pub unresolved: Option<String>,
}

/// A decoded request, borrowing its strings from the decompressed body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request<'a> {
    pub series: Vec<Series<'a>>,
    pub labels: Vec<LabelPair<'a>>,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
    pub exemplar_labels: Vec<LabelPair<'a>>,
    /// 1.0 only: the request's per-family metadata.
    pub metadata: Vec<FamilyMetadata<'a>>,
}

impl<'a> Request<'a> {
    pub fn labels_of(&self, series: &Series<'a>) -> &[LabelPair<'a>] {
        self.labels.get(series.labels.clone()).unwrap_or(&[])
    }

    pub fn samples_of(&self, series: &Series<'a>) -> &[Sample] {
        self.samples.get(series.samples.clone()).unwrap_or(&[])
    }

    pub fn exemplars_of(&self, series: &Series<'a>) -> &[Exemplar] {
        self.exemplars.get(series.exemplars.clone()).unwrap_or(&[])
    }

    /// Every sample as (`name=value,…` of its series, timestamp, value), in request order:
    /// what tests of the senders compare against.
    #[cfg(test)]
    pub fn flat_samples(&self) -> Vec<(String, i64, f64)> {
        let mut flat = Vec::new();
        for series in &self.series {
            let labels: Vec<String> = self
                .labels_of(series)
                .iter()
                .map(|pair| format!("{}={}", pair.name, pair.value))
                .collect();
            let labels = labels.join(",");
            for sample in self.samples_of(series) {
                flat.push((labels.clone(), sample.timestamp, sample.value));
            }
        }
        flat
    }

    pub fn exemplar_labels_of(&self, exemplar: &Exemplar) -> &[LabelPair<'a>] {
        self.exemplar_labels
            .get(exemplar.labels.clone())
            .unwrap_or(&[])
    }

    fn entries(&self) -> usize {
        self.series.len()
            + self.labels.len()
            + self.samples.len()
            + self.exemplars.len()
            + self.exemplar_labels.len()
            + self.metadata.len()
    }
}

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes; `origin` is where they start in the whole body, for
/// error offsets.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    origin: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], origin: usize, message: &'static str) -> Self {
        Reader {
            bytes,
            position: 0,
            origin,
            message,
        }
    }

    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn error(&self, what: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            what: what.into(),
            offset: self.origin + self.position,
            message: self.message,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        // One byte is by far the common case (field keys, small lengths).
        if let Some(&byte) = self.bytes.get(self.position)
            && byte < 0x80
        {
            self.position += 1;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for index in 0..10 {
            let Some(&byte) = self.bytes.get(self.position + index) else {
                return Err(self.error("truncated varint"));
            };
            // The tenth byte may only carry the top bit of a u64.
            if index == 9 && byte > 1 {
                return Err(self.error("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.position += index + 1;
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let key = self.varint()?;
        let Ok(key) = u32::try_from(key) else {
            return Err(self.error(format!("invalid field key {key}")));
        };
        let wire_type = (key & 7) as u8;
        let field = key >> 3;
        if field == 0 {
            return Err(self.error("field number 0"));
        }
        Ok((field, wire_type))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.position + 8;
        let Some(bytes) = self.bytes.get(self.position..end) else {
            return Err(self.error("truncated 64-bit field"));
        };
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        self.position = end;
        Ok(u64::from_le_bytes(array))
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.varint()?;
        let remaining = self.bytes.len() - self.position;
        let length = match usize::try_from(length) {
            Ok(length) if length <= remaining => length,
            _ => {
                return Err(self.error(format!(
                    "length {length} runs past the end of the message ({remaining} bytes left)"
                )));
            }
        };
        let start = self.position;
        self.position += length;
        Ok(&self.bytes[start..start + length])
    }

    /// A nested message's reader.
    fn message(&mut self, message: &'static str) -> Result<Reader<'a>, DecodeError> {
        let bytes = self.length_delimited()?;
        let origin = self.origin + self.position - bytes.len();
        Ok(Reader::new(bytes, origin, message))
    }

    fn string(&mut self, field: &str) -> Result<&'a str, DecodeError> {
        let start = self.position;
        let bytes = self.length_delimited()?;
        std::str::from_utf8(bytes).map_err(|error| {
            self.position = start;
            self.error(format!("{field} is not valid UTF-8 ({error})"))
        })
    }

    fn double(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.fixed64()?))
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LENGTH_DELIMITED => self.length_delimited().map(drop),
            FIXED32 => {
                let end = self.position + 4;
                if end > self.bytes.len() {
                    return Err(self.error("truncated 32-bit field"));
                }
                self.position = end;
                Ok(())
            }
            other => Err(self.error(format!(
                "unsupported wire type {other} (groups are not used by remote write)"
            ))),
        }
    }

    /// Checks a known field's wire type.
    fn expect(&self, field: &str, wire_type: u8, expected: u8) -> Result<(), DecodeError> {
        if wire_type == expected {
            Ok(())
        } else {
            Err(self.error(format!(
                "field {field} has wire type {wire_type}, expected {expected}"
            )))
        }
    }

    /// A repeated `uint32`, packed (wire type 2) or not (0), appended to `out`, which may not
    /// grow past `limit`. Values over 32 bits are truncated, as prost and Go do.
    fn repeated_u32(
        &mut self,
        field: &str,
        wire_type: u8,
        out: &mut Vec<u32>,
        limit: usize,
    ) -> Result<(), DecodeError> {
        match wire_type {
            VARINT => {
                out.push(self.varint()? as u32);
                Ok(())
            }
            LENGTH_DELIMITED => {
                let mut packed = self.message(self.message)?;
                while !packed.at_end() {
                    if out.len() >= limit {
                        return Err(DecodeError::TooManyEntries);
                    }
                    out.push(packed.varint()? as u32);
                }
                Ok(())
            }
            other => Err(self.error(format!(
                "field {field} has wire type {other}, expected 0 or 2"
            ))),
        }
    }
}

/// Decodes a sample message (the same in 1.0 and 2.0).
fn sample(mut reader: Reader<'_>) -> Result<Sample, DecodeError> {
    let mut sample = Sample {
        timestamp: 0,
        value: 0.0,
    };
    while !reader.at_end() {
        match reader.key()? {
            (1, wire_type) => {
                reader.expect("value", wire_type, FIXED64)?;
                sample.value = reader.double()?;
            }
            (2, wire_type) => {
                reader.expect("timestamp", wire_type, VARINT)?;
                sample.timestamp = reader.varint()? as i64;
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(sample)
}

/// Decodes a 1.0 `Label` message.
fn label<'a>(mut reader: Reader<'a>) -> Result<LabelPair<'a>, DecodeError> {
    let mut pair = LabelPair {
        name: "",
        value: "",
    };
    while !reader.at_end() {
        match reader.key()? {
            (1, wire_type) => {
                reader.expect("name", wire_type, LENGTH_DELIMITED)?;
                pair.name = reader.string("label name")?;
            }
            (2, wire_type) => {
                reader.expect("value", wire_type, LENGTH_DELIMITED)?;
                pair.value = reader.string("label value")?;
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(pair)
}

fn check_entries(request: &Request<'_>) -> Result<(), DecodeError> {
    if request.entries() > MAX_ENTRIES {
        Err(DecodeError::TooManyEntries)
    } else {
        Ok(())
    }
}

/// Decodes a remote write 1.0 `prometheus.WriteRequest`.
pub fn decode_v1(bytes: &[u8]) -> Result<Request<'_>, DecodeError> {
    let mut request = Request::default();
    let mut reader = Reader::new(bytes, 0, "WriteRequest");
    while !reader.at_end() {
        match reader.key()? {
            (1, wire_type) => {
                reader.expect("timeseries", wire_type, LENGTH_DELIMITED)?;
                let series = reader.message("TimeSeries")?;
                v1_series(&mut request, series)?;
                check_entries(&request)?;
            }
            (3, wire_type) => {
                reader.expect("metadata", wire_type, LENGTH_DELIMITED)?;
                let mut entry = reader.message("MetricMetadata")?;
                let mut metadata = FamilyMetadata {
                    metric_type: 0,
                    family: "",
                    help: "",
                    unit: "",
                };
                while !entry.at_end() {
                    match entry.key()? {
                        (1, wire_type) => {
                            entry.expect("type", wire_type, VARINT)?;
                            metadata.metric_type = entry.varint()? as i32;
                        }
                        (2, wire_type) => {
                            entry.expect("metric_family_name", wire_type, LENGTH_DELIMITED)?;
                            metadata.family = entry.string("metric_family_name")?;
                        }
                        (4, wire_type) => {
                            entry.expect("help", wire_type, LENGTH_DELIMITED)?;
                            metadata.help = entry.string("help")?;
                        }
                        (5, wire_type) => {
                            entry.expect("unit", wire_type, LENGTH_DELIMITED)?;
                            metadata.unit = entry.string("unit")?;
                        }
                        (_, wire_type) => entry.skip(wire_type)?,
                    }
                }
                request.metadata.push(metadata);
                check_entries(&request)?;
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    Ok(request)
}

fn v1_series<'a>(request: &mut Request<'a>, mut reader: Reader<'a>) -> Result<(), DecodeError> {
    let labels_start = request.labels.len();
    let samples_start = request.samples.len();
    let exemplars_start = request.exemplars.len();
    let mut histograms = 0;
    while !reader.at_end() {
        // Checked as the series grows: one series may be nearly the whole body.
        if request.entries() + histograms > MAX_ENTRIES {
            return Err(DecodeError::TooManyEntries);
        }
        match reader.key()? {
            (1, wire_type) => {
                reader.expect("labels", wire_type, LENGTH_DELIMITED)?;
                request.labels.push(label(reader.message("Label")?)?);
            }
            (2, wire_type) => {
                reader.expect("samples", wire_type, LENGTH_DELIMITED)?;
                request.samples.push(sample(reader.message("Sample")?)?);
            }
            (3, wire_type) => {
                reader.expect("exemplars", wire_type, LENGTH_DELIMITED)?;
                let mut exemplar_reader = reader.message("Exemplar")?;
                let labels_start = request.exemplar_labels.len();
                let mut exemplar = Exemplar {
                    labels: 0..0,
                    value: 0.0,
                    timestamp: 0,
                };
                while !exemplar_reader.at_end() {
                    match exemplar_reader.key()? {
                        (1, wire_type) => {
                            exemplar_reader.expect("labels", wire_type, LENGTH_DELIMITED)?;
                            request
                                .exemplar_labels
                                .push(label(exemplar_reader.message("Label")?)?);
                        }
                        (2, wire_type) => {
                            exemplar_reader.expect("value", wire_type, FIXED64)?;
                            exemplar.value = exemplar_reader.double()?;
                        }
                        (3, wire_type) => {
                            exemplar_reader.expect("timestamp", wire_type, VARINT)?;
                            exemplar.timestamp = exemplar_reader.varint()? as i64;
                        }
                        (_, wire_type) => exemplar_reader.skip(wire_type)?,
                    }
                }
                exemplar.labels = labels_start..request.exemplar_labels.len();
                request.exemplars.push(exemplar);
            }
            (4, wire_type) => {
                reader.expect("histograms", wire_type, LENGTH_DELIMITED)?;
                reader.length_delimited()?;
                histograms += 1;
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    request.series.push(Series {
        labels: labels_start..request.labels.len(),
        samples: samples_start..request.samples.len(),
        exemplars: exemplars_start..request.exemplars.len(),
        histograms,
        metadata: None,
        created_timestamp: 0,
        unresolved: None,
    });
    Ok(())
}

/// A 2.0 series before its references are resolved (the symbol table may come after it).
struct RawSeries {
    label_refs: Range<usize>,
    samples: Range<usize>,
    exemplars: Range<usize>,
    histograms: usize,
    /// Type, help and unit references.
    metadata: Option<(i32, u32, u32)>,
    created_timestamp: i64,
}

/// A 2.0 exemplar before resolution: its label references' range and value.
struct RawExemplar {
    label_refs: Range<usize>,
    value: f64,
    timestamp: i64,
}

/// Decodes a remote write 2.0 `io.prometheus.write.v2.Request` and resolves its symbol
/// references. A series whose references are out of range or not in pairs keeps
/// `unresolved` set (the rest of the request stays usable, so the receiver can write what is
/// valid and name what is not).
pub fn decode_v2<'a>(bytes: &'a [u8]) -> Result<Request<'a>, DecodeError> {
    let mut symbols: Vec<&'a str> = Vec::new();
    let mut refs: Vec<u32> = Vec::new();
    let mut raw_series: Vec<RawSeries> = Vec::new();
    let mut raw_exemplars: Vec<RawExemplar> = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut reader = Reader::new(bytes, 0, "Request");
    while !reader.at_end() {
        match reader.key()? {
            (4, wire_type) => {
                reader.expect("symbols", wire_type, LENGTH_DELIMITED)?;
                symbols.push(reader.string("symbol")?);
            }
            (5, wire_type) => {
                reader.expect("timeseries", wire_type, LENGTH_DELIMITED)?;
                let series = reader.message("TimeSeries")?;
                let used = symbols.len() + raw_series.len();
                raw_series.push(v2_series(
                    series,
                    used,
                    &mut refs,
                    &mut samples,
                    &mut raw_exemplars,
                )?);
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
        if symbols.len() + raw_series.len() + refs.len() / 2 + samples.len() + raw_exemplars.len()
            > MAX_ENTRIES
        {
            return Err(DecodeError::TooManyEntries);
        }
    }

    let symbol = |reference: u32| symbols.get(reference as usize).copied();
    let mut request = Request {
        series: Vec::with_capacity(raw_series.len()),
        labels: Vec::with_capacity(refs.len() / 2),
        samples,
        exemplars: Vec::with_capacity(raw_exemplars.len()),
        exemplar_labels: Vec::new(),
        metadata: Vec::new(),
    };
    for raw in raw_series {
        let mut unresolved = None;
        let labels_start = request.labels.len();
        let series_refs = refs.get(raw.label_refs.clone()).unwrap_or(&[]);
        if let Err(why) = resolve_pairs(&symbols, series_refs, &mut request.labels) {
            request.labels.truncate(labels_start);
            unresolved = Some(format!("labels: {why}"));
        }
        let exemplars_start = request.exemplars.len();
        if unresolved.is_none() {
            for (index, exemplar) in raw_exemplars
                .get(raw.exemplars.clone())
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let start = request.exemplar_labels.len();
                let exemplar_refs = refs.get(exemplar.label_refs.clone()).unwrap_or(&[]);
                if let Err(why) =
                    resolve_pairs(&symbols, exemplar_refs, &mut request.exemplar_labels)
                {
                    request.exemplar_labels.truncate(start);
                    unresolved = Some(format!("exemplar {index}: {why}"));
                    break;
                }
                request.exemplars.push(Exemplar {
                    labels: start..request.exemplar_labels.len(),
                    value: exemplar.value,
                    timestamp: exemplar.timestamp,
                });
            }
        }
        let mut metadata = None;
        if unresolved.is_none()
            && let Some((metric_type, help_ref, unit_ref)) = raw.metadata
        {
            // Reference 0 is "" by the specification, even in a request without symbols.
            let text =
                |reference: u32| symbol(reference).or(if reference == 0 { Some("") } else { None });
            match (text(help_ref), text(unit_ref)) {
                (Some(help), Some(unit)) => {
                    metadata = Some(SeriesMetadata {
                        metric_type,
                        help,
                        unit,
                    });
                }
                (help, _) => {
                    let (field, bad) = if help.is_none() {
                        ("help_ref", help_ref)
                    } else {
                        ("unit_ref", unit_ref)
                    };
                    unresolved = Some(format!(
                        "metadata {field} {bad} is out of range (the symbol table has {} entries)",
                        symbols.len()
                    ));
                }
            }
        }
        if unresolved.is_some() {
            request.labels.truncate(labels_start);
            request.exemplars.truncate(exemplars_start);
        }
        request.series.push(Series {
            labels: labels_start..request.labels.len(),
            samples: raw.samples,
            exemplars: exemplars_start..request.exemplars.len(),
            histograms: raw.histograms,
            metadata,
            created_timestamp: raw.created_timestamp,
            unresolved,
        });
    }
    Ok(request)
}

/// Resolves symbol reference pairs into `out`, or says why they cannot be.
fn resolve_pairs<'a>(
    symbols: &[&'a str],
    pairs: &[u32],
    out: &mut Vec<LabelPair<'a>>,
) -> Result<(), String> {
    if !pairs.len().is_multiple_of(2) {
        return Err(format!(
            "labels_refs has an odd length ({}): it must hold name and value pairs",
            pairs.len()
        ));
    }
    let symbol = |reference: u32| symbols.get(reference as usize).copied();
    for pair in pairs.chunks_exact(2) {
        match (symbol(pair[0]), symbol(pair[1])) {
            (Some(name), Some(value)) => out.push(LabelPair { name, value }),
            _ => {
                let bad = if symbol(pair[0]).is_none() {
                    pair[0]
                } else {
                    pair[1]
                };
                return Err(format!(
                    "symbol reference {bad} is out of range (the symbol table has {} entries)",
                    symbols.len()
                ));
            }
        }
    }
    Ok(())
}

/// Decodes one 2.0 series; `used` entries are already taken by the rest of the request.
fn v2_series(
    mut reader: Reader<'_>,
    used: usize,
    refs: &mut Vec<u32>,
    samples: &mut Vec<Sample>,
    exemplars: &mut Vec<RawExemplar>,
) -> Result<RawSeries, DecodeError> {
    let refs_start = refs.len();
    let samples_start = samples.len();
    let exemplars_start = exemplars.len();
    let mut series = RawSeries {
        label_refs: 0..0,
        samples: 0..0,
        exemplars: 0..0,
        histograms: 0,
        metadata: None,
        created_timestamp: 0,
    };
    // Exemplar references go after the series' own, so both stay contiguous: collect them
    // apart and move them in at the end.
    let mut exemplar_refs: Vec<u32> = Vec::new();
    let mut pending_exemplars: Vec<RawExemplar> = Vec::new();
    // Label references count half an entry each (a pair makes one label).
    let refs_limit = 2 * MAX_ENTRIES;
    while !reader.at_end() {
        if used
            + (refs.len() + exemplar_refs.len()) / 2
            + samples.len()
            + exemplars.len()
            + pending_exemplars.len()
            + series.histograms
            > MAX_ENTRIES
        {
            return Err(DecodeError::TooManyEntries);
        }
        match reader.key()? {
            (1, wire_type) => {
                reader.repeated_u32("labels_refs", wire_type, refs, refs_limit)?;
            }
            (2, wire_type) => {
                reader.expect("samples", wire_type, LENGTH_DELIMITED)?;
                samples.push(sample(reader.message("Sample")?)?);
            }
            (3, wire_type) => {
                reader.expect("histograms", wire_type, LENGTH_DELIMITED)?;
                reader.length_delimited()?;
                series.histograms += 1;
            }
            (4, wire_type) => {
                reader.expect("exemplars", wire_type, LENGTH_DELIMITED)?;
                let mut exemplar_reader = reader.message("Exemplar")?;
                let start = exemplar_refs.len();
                let mut exemplar = RawExemplar {
                    label_refs: 0..0,
                    value: 0.0,
                    timestamp: 0,
                };
                while !exemplar_reader.at_end() {
                    match exemplar_reader.key()? {
                        (1, wire_type) => exemplar_reader.repeated_u32(
                            "labels_refs",
                            wire_type,
                            &mut exemplar_refs,
                            refs_limit,
                        )?,
                        (2, wire_type) => {
                            exemplar_reader.expect("value", wire_type, FIXED64)?;
                            exemplar.value = exemplar_reader.double()?;
                        }
                        (3, wire_type) => {
                            exemplar_reader.expect("timestamp", wire_type, VARINT)?;
                            exemplar.timestamp = exemplar_reader.varint()? as i64;
                        }
                        (_, wire_type) => exemplar_reader.skip(wire_type)?,
                    }
                }
                exemplar.label_refs = start..exemplar_refs.len();
                pending_exemplars.push(exemplar);
            }
            (5, wire_type) => {
                reader.expect("metadata", wire_type, LENGTH_DELIMITED)?;
                let mut metadata_reader = reader.message("Metadata")?;
                // A repeated singular message merges into the earlier one.
                let (mut metric_type, mut help_ref, mut unit_ref) =
                    series.metadata.unwrap_or((0, 0, 0));
                while !metadata_reader.at_end() {
                    match metadata_reader.key()? {
                        (1, wire_type) => {
                            metadata_reader.expect("type", wire_type, VARINT)?;
                            metric_type = metadata_reader.varint()? as i32;
                        }
                        (3, wire_type) => {
                            metadata_reader.expect("help_ref", wire_type, VARINT)?;
                            help_ref = metadata_reader.varint()? as u32;
                        }
                        (4, wire_type) => {
                            metadata_reader.expect("unit_ref", wire_type, VARINT)?;
                            unit_ref = metadata_reader.varint()? as u32;
                        }
                        (_, wire_type) => metadata_reader.skip(wire_type)?,
                    }
                }
                series.metadata = Some((metric_type, help_ref, unit_ref));
            }
            (6, wire_type) => {
                reader.expect("created_timestamp", wire_type, VARINT)?;
                series.created_timestamp = reader.varint()? as i64;
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    series.label_refs = refs_start..refs.len();
    let base = refs.len();
    refs.extend_from_slice(&exemplar_refs);
    for mut exemplar in pending_exemplars {
        exemplar.label_refs = exemplar.label_refs.start + base..exemplar.label_refs.end + base;
        exemplars.push(exemplar);
    }
    series.samples = samples_start..samples.len();
    series.exemplars = exemplars_start..exemplars.len();
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::remote_write::proto;
    use proptest::prelude::*;
    use prost::Message as _;

    /// A request in owned form, to compare the two decoders.
    type OwnedLabels = Vec<(String, String)>;
    /// Labels, value bits and timestamp.
    type OwnedExemplar = (OwnedLabels, u64, i64);

    #[derive(Debug, PartialEq)]
    struct Owned {
        series: Vec<OwnedSeries>,
        metadata: Vec<(i32, String, String, String)>,
    }

    #[derive(Debug, PartialEq)]
    struct OwnedSeries {
        labels: Vec<(String, String)>,
        /// Value bits, so NaNs compare.
        samples: Vec<(i64, u64)>,
        exemplars: Vec<OwnedExemplar>,
        histograms: usize,
        metadata: Option<(i32, String, String)>,
        created_timestamp: i64,
        unresolved: bool,
    }

    fn pairs(labels: &[LabelPair<'_>]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|pair| (pair.name.to_string(), pair.value.to_string()))
            .collect()
    }

    fn owned(request: &Request<'_>) -> Owned {
        Owned {
            series: request
                .series
                .iter()
                .map(|series| OwnedSeries {
                    labels: pairs(request.labels_of(series)),
                    samples: request
                        .samples_of(series)
                        .iter()
                        .map(|s| (s.timestamp, s.value.to_bits()))
                        .collect(),
                    exemplars: request
                        .exemplars_of(series)
                        .iter()
                        .map(|e| {
                            (
                                pairs(request.exemplar_labels_of(e)),
                                e.value.to_bits(),
                                e.timestamp,
                            )
                        })
                        .collect(),
                    histograms: series.histograms,
                    metadata: series
                        .metadata
                        .map(|m| (m.metric_type, m.help.to_string(), m.unit.to_string())),
                    created_timestamp: series.created_timestamp,
                    unresolved: series.unresolved.is_some(),
                })
                .collect(),
            metadata: request
                .metadata
                .iter()
                .map(|m| {
                    (
                        m.metric_type,
                        m.family.to_string(),
                        m.help.to_string(),
                        m.unit.to_string(),
                    )
                })
                .collect(),
        }
    }

    fn prost_pairs(labels: &[proto::Label]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    }

    fn expected_v1(request: &proto::WriteRequest) -> Owned {
        Owned {
            series: request
                .timeseries
                .iter()
                .map(|series| OwnedSeries {
                    labels: prost_pairs(&series.labels),
                    samples: series
                        .samples
                        .iter()
                        .map(|s| (s.timestamp, s.value.to_bits()))
                        .collect(),
                    exemplars: series
                        .exemplars
                        .iter()
                        .map(|e| (prost_pairs(&e.labels), e.value.to_bits(), e.timestamp))
                        .collect(),
                    histograms: series.histograms.len(),
                    metadata: None,
                    created_timestamp: 0,
                    unresolved: false,
                })
                .collect(),
            metadata: request
                .metadata
                .iter()
                .map(|m| {
                    (
                        m.r#type,
                        m.metric_family_name.clone(),
                        m.help.clone(),
                        m.unit.clone(),
                    )
                })
                .collect(),
        }
    }

    /// What a 2.0 request means, resolved by hand from prost's decoding.
    fn expected_v2(request: &proto::v2::Request) -> Owned {
        let symbol = |r: u32| request.symbols.get(r as usize).cloned();
        let resolve = |refs: &[u32]| -> Option<Vec<(String, String)>> {
            if !refs.len().is_multiple_of(2) {
                return None;
            }
            refs.chunks(2)
                .map(|pair| Some((symbol(pair[0])?, symbol(pair[1])?)))
                .collect()
        };
        Owned {
            series: request
                .timeseries
                .iter()
                .map(|series| {
                    let labels = resolve(&series.labels_refs);
                    let exemplars: Option<Vec<_>> = series
                        .exemplars
                        .iter()
                        .map(|e| Some((resolve(&e.labels_refs)?, e.value.to_bits(), e.timestamp)))
                        .collect();
                    let text =
                        |r: u32| symbol(r).or(if r == 0 { Some(String::new()) } else { None });
                    let metadata = series
                        .metadata
                        .as_ref()
                        .map(|m| Some((m.r#type, text(m.help_ref)?, text(m.unit_ref)?)));
                    let resolved =
                        labels.is_some() && exemplars.is_some() && !matches!(metadata, Some(None));
                    OwnedSeries {
                        labels: if resolved {
                            labels.unwrap()
                        } else {
                            Vec::new()
                        },
                        samples: series
                            .samples
                            .iter()
                            .map(|s| (s.timestamp, s.value.to_bits()))
                            .collect(),
                        exemplars: if resolved {
                            exemplars.unwrap()
                        } else {
                            Vec::new()
                        },
                        histograms: series.histograms.len(),
                        metadata: if resolved { metadata.flatten() } else { None },
                        created_timestamp: series.created_timestamp,
                        unresolved: !resolved,
                    }
                })
                .collect(),
            metadata: Vec::new(),
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z_]{1,8}", "\\PC{0,6}",]
    }

    fn labels() -> impl Strategy<Value = Vec<proto::Label>> {
        prop::collection::vec(
            (text(), text()).prop_map(|(name, value)| proto::Label { name, value }),
            0..5,
        )
    }

    fn samples() -> impl Strategy<Value = Vec<proto::Sample>> {
        prop::collection::vec(
            (any::<i64>(), any::<f64>())
                .prop_map(|(timestamp, value)| proto::Sample { value, timestamp }),
            0..5,
        )
    }

    fn histograms() -> impl Strategy<Value = Vec<proto::Histogram>> {
        prop::collection::vec(
            (any::<u64>(), any::<i64>()).prop_map(|(count_int, timestamp)| proto::Histogram {
                count_int,
                sum: 1.5,
                timestamp,
            }),
            0..2,
        )
    }

    fn v1_request() -> impl Strategy<Value = proto::WriteRequest> {
        let exemplar =
            (labels(), any::<f64>(), any::<i64>()).prop_map(|(labels, value, timestamp)| {
                proto::Exemplar {
                    labels,
                    value,
                    timestamp,
                }
            });
        let series = (
            labels(),
            samples(),
            prop::collection::vec(exemplar, 0..2),
            histograms(),
        )
            .prop_map(
                |(labels, samples, exemplars, histograms)| proto::TimeSeries {
                    labels,
                    samples,
                    exemplars,
                    histograms,
                },
            );
        let metadata = (any::<i32>(), text(), text(), text()).prop_map(
            |(r#type, metric_family_name, help, unit)| proto::MetricMetadata {
                r#type,
                metric_family_name,
                help,
                unit,
            },
        );
        (
            prop::collection::vec(series, 0..6),
            prop::collection::vec(metadata, 0..3),
        )
            .prop_map(|(timeseries, metadata)| proto::WriteRequest {
                timeseries,
                metadata,
            })
    }

    fn v2_request() -> impl Strategy<Value = proto::v2::Request> {
        // References mostly in range (the table has up to 8 symbols), sometimes not.
        let reference = prop_oneof![9 => 0u32..8, 1 => any::<u32>()];
        let refs = prop::collection::vec(reference.clone(), 0..7);
        let exemplar = (refs.clone(), any::<f64>(), any::<i64>()).prop_map(
            |(labels_refs, value, timestamp)| proto::v2::Exemplar {
                labels_refs,
                value,
                timestamp,
            },
        );
        let metadata = (any::<i32>(), reference.clone(), reference).prop_map(
            |(r#type, help_ref, unit_ref)| proto::v2::Metadata {
                r#type,
                help_ref,
                unit_ref,
            },
        );
        let series = (
            refs,
            samples(),
            histograms(),
            prop::collection::vec(exemplar, 0..2),
            prop::option::of(metadata),
            any::<i64>(),
        )
            .prop_map(
                |(labels_refs, samples, histograms, exemplars, metadata, created_timestamp)| {
                    proto::v2::TimeSeries {
                        labels_refs,
                        samples,
                        histograms,
                        exemplars,
                        metadata,
                        created_timestamp,
                    }
                },
            );
        (
            prop::collection::vec(text(), 0..8),
            prop::collection::vec(series, 0..6),
        )
            .prop_map(|(mut symbols, timeseries)| {
                if let Some(first) = symbols.first_mut() {
                    first.clear();
                }
                proto::v2::Request {
                    symbols,
                    timeseries,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn v1_matches_prost(request in v1_request()) {
            let bytes = request.encode_to_vec();
            let decoded = decode_v1(&bytes).unwrap();
            // Against prost's reading of the bytes, not `request`: proto3 does not encode
            // default values, so a -0.0 comes back as 0.0 from either decoder.
            let reference = proto::WriteRequest::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(owned(&decoded), expected_v1(&reference));
        }

        #[test]
        fn v2_matches_prost(request in v2_request()) {
            let bytes = request.encode_to_vec();
            let decoded = decode_v2(&bytes).unwrap();
            let reference = proto::v2::Request::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(owned(&decoded), expected_v2(&reference));
        }

        /// Damaged messages: never a panic, and whenever prost accepts the bytes this
        /// decoder reads them the same way.
        #[test]
        fn damaged_v1_agrees_with_prost(
            request in v1_request(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let mut bytes = request.encode_to_vec();
            if !bytes.is_empty() {
                let at = flip.index(bytes.len());
                bytes[at] ^= xor;
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let ours = decode_v1(&bytes);
            if let Ok(theirs) = proto::WriteRequest::decode(bytes.as_slice()) {
                // prost reads histogram contents and we skip them, so it may refuse more.
                prop_assert_eq!(owned(&ours.unwrap()), expected_v1(&theirs));
            }
        }

        #[test]
        fn damaged_v2_agrees_with_prost(
            request in v2_request(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let mut bytes = request.encode_to_vec();
            if !bytes.is_empty() {
                let at = flip.index(bytes.len());
                bytes[at] ^= xor;
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let ours = decode_v2(&bytes);
            if let Ok(theirs) = proto::v2::Request::decode(bytes.as_slice()) {
                prop_assert_eq!(owned(&ours.unwrap()), expected_v2(&theirs));
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_v1(&bytes);
            let _ = decode_v2(&bytes);
        }
    }

    #[test]
    fn unpacked_refs_and_merged_metadata() {
        // labels_refs sent unpacked (wire type 0), and metadata sent in two parts.
        let mut series = Vec::new();
        for reference in [1u8, 2] {
            series.extend_from_slice(&[0x08, reference]);
        }
        series.extend_from_slice(&[0x2a, 0x02, 0x08, 0x02]); // metadata { type: gauge }
        series.extend_from_slice(&[0x2a, 0x02, 0x18, 0x03]); // metadata { help_ref: 3 }
        let mut body = Vec::new();
        for symbol in ["", "__name__", "up", "help text"] {
            body.push(0x22);
            body.push(symbol.len() as u8);
            body.extend_from_slice(symbol.as_bytes());
        }
        body.push(0x2a);
        body.push(series.len() as u8);
        body.extend_from_slice(&series);
        let request = decode_v2(&body).unwrap();
        let series = &request.series[0];
        assert_eq!(
            request.labels_of(series),
            [LabelPair {
                name: "__name__",
                value: "up"
            }]
        );
        assert_eq!(
            series.metadata,
            Some(SeriesMetadata {
                metric_type: 2,
                help: "help text",
                unit: ""
            })
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        // timeseries { labels { name: <length 5, 2 bytes left> } }
        let body = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x05, 0x61];
        let error = decode_v1(&body).unwrap_err().to_string();
        assert_eq!(
            error,
            "protobuf: length 5 runs past the end of the message (1 bytes left) at byte 6 (in Label)"
        );
        let error = decode_v1(&[0x0a, 0x02, 0x0a, 0x80])
            .unwrap_err()
            .to_string();
        assert!(error.contains("truncated varint"), "{error}");
        let error = decode_v1(&[0x0b]).unwrap_err().to_string();
        assert!(error.contains("wire type 3"), "{error}");
        let invalid_utf8 = [0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x00];
        assert!(decode_v1(&invalid_utf8).is_ok());
        let invalid_utf8 = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff];
        let error = decode_v1(&invalid_utf8).unwrap_err().to_string();
        assert!(error.contains("label name is not valid UTF-8"), "{error}");
    }

    #[test]
    fn entries_are_bounded() {
        // Empty samples cost two bytes each: one series with MAX_ENTRIES of them.
        let count = MAX_ENTRIES + 1;
        let mut series = Vec::with_capacity(count * 2);
        for _ in 0..count {
            series.extend_from_slice(&[0x12, 0x00]);
        }
        let mut body = vec![0x0a];
        let mut length = series.len() as u64;
        while length >= 0x80 {
            body.push((length as u8) | 0x80);
            length >>= 7;
        }
        body.push(length as u8);
        body.extend_from_slice(&series);
        assert_eq!(decode_v1(&body), Err(DecodeError::TooManyEntries));
    }
}
