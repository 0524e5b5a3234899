//! W3C Trace Context (`traceparent` / `tracestate`) carried in Volley's request headers.

use std::str::FromStr as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// The longest `tracestate` this propagator reads (the W3C limit is 32 members; 512 bytes is
/// what the specification asks every vendor to accept, with room to spare).
const MAX_TRACESTATE: usize = 8192;

/// The W3C Trace Context propagator: writes and reads `traceparent` and `tracestate`.
///
/// This is what [`OtelInterceptor`](crate::OtelInterceptor) uses unless it is given another
/// propagator; it needs no SDK. Malformed headers are ignored (the call then starts a new
/// trace), as the W3C specification asks.
#[derive(Debug, Clone)]
pub struct TraceContextPropagator {
    fields: [String; 2],
}

impl Default for TraceContextPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceContextPropagator {
    /// A new propagator.
    pub fn new() -> Self {
        Self {
            fields: [TRACEPARENT.to_string(), TRACESTATE.to_string()],
        }
    }
}

/// `traceparent` for a span context: `00-<trace id>-<span id>-<flags>`.
pub(crate) fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags() & TraceFlags::SAMPLED
    )
}

/// Whether `s` is exactly `len` lowercase hexadecimal digits.
fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses a `traceparent` value; `None` when it is not valid.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let value = value.trim();
    // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
    if value.len() < 55 || !value.is_ascii() {
        return None;
    }
    let (version, rest) = (&value[..2], &value[2..]);
    if !lower_hex(version, 2) || version == "ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append "-" and more fields.
    if version == "00" && value.len() != 55 {
        return None;
    }
    if value.len() > 55 && value.as_bytes()[55] != b'-' {
        return None;
    }
    let rest = &rest[..53];
    let b = rest.as_bytes();
    if b[0] != b'-' || b[33] != b'-' || b[50] != b'-' {
        return None;
    }
    let (trace, span, flags) = (&rest[1..33], &rest[34..50], &rest[51..53]);
    if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let trace = TraceId::from(u128::from_str_radix(trace, 16).ok()?);
    let span = SpanId::from(u64::from_str_radix(span, 16).ok()?);
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some((trace, span, TraceFlags::new(flags) & TraceFlags::SAMPLED))
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, traceparent(sc));
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some((trace, span, flags)) = extractor.get(TRACEPARENT).and_then(parse_traceparent)
        else {
            return cx.clone();
        };
        // Several `tracestate` fields make one list. An unparsable or oversized one is
        // dropped; the traceparent still holds.
        let fields = extractor.get_all(TRACESTATE).unwrap_or_default();
        let total: usize = fields.iter().map(|f| f.len() + 1).sum();
        let state = (total <= MAX_TRACESTATE && !fields.is_empty())
            .then(|| fields.join(","))
            .and_then(|s| TraceState::from_str(s.trim()).ok())
            .unwrap_or_default();
        cx.with_remote_span_context(SpanContext::new(trace, span, flags, true, state))
    }

    fn fields(&self) -> text_map_propagator::FieldIter<'_> {
        text_map_propagator::FieldIter::new(&self.fields)
    }
}

/// Writes propagation fields into request headers (values that are not valid header values
/// are skipped).
pub(crate) struct HeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Reads propagation fields from request headers (values that are not visible ASCII are
/// skipped).
pub(crate) struct HeaderExtractor<'a>(pub(crate) &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!all.is_empty()).then_some(all)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_a_valid_traceparent() {
        let (t, s, f) = parse_traceparent(GOOD).unwrap();
        assert_eq!(format!("{t:032x}"), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{s:016x}"), "00f067aa0ba902b7");
        assert!(f.is_sampled());
        let (_, _, f) = parse_traceparent(&GOOD.replace("-01", "-00")).unwrap();
        assert!(!f.is_sampled());
        // A later version may carry more fields after a dash.
        let future = GOOD.replacen("00-", "01-", 1) + "-extra";
        assert!(parse_traceparent(&future).is_some());
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            "",
            "00",
            &GOOD[..54],
            &format!("{GOOD}0"),
            &format!("{GOOD}-x"),
            &GOOD.replacen("00-", "ff-", 1),
            &GOOD.replacen("00-", "0g-", 1),
            &GOOD.to_uppercase(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            &format!("01-{}", "é".repeat(40)),
            &GOOD.replacen("00-", "01-", 1).replace("-01", "-01x"),
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn round_trips_through_headers() {
        let state = TraceState::from_key_value([("vendor", "value")]).unwrap();
        let sc = SpanContext::new(
            TraceId::from(0x1234_u128),
            SpanId::from(0x5678_u64),
            TraceFlags::SAMPLED,
            false,
            state,
        );
        let cx = Context::new().with_remote_span_context(sc.clone());
        let mut headers = HeaderMap::new();
        let p = TraceContextPropagator::new();
        p.inject_context(&cx, &mut HeaderInjector(&mut headers));
        assert_eq!(
            headers["traceparent"],
            "00-00000000000000000000000000001234-0000000000005678-01"
        );
        assert_eq!(headers["tracestate"], "vendor=value");
        let out = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        let span = out.span();
        let got = span.span_context();
        assert_eq!(got.trace_id(), sc.trace_id());
        assert_eq!(got.span_id(), sc.span_id());
        assert!(got.is_remote() && got.is_sampled());
        assert_eq!(got.trace_state().get("vendor"), Some("value"));
    }

    #[test]
    fn a_bad_tracestate_keeps_the_traceparent() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(GOOD));
        headers.insert("tracestate", HeaderValue::from_static("=,=,no key"));
        let p = TraceContextPropagator::new();
        let out = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        assert!(out.span().span_context().is_valid());
        let huge = "k=v,".repeat(MAX_TRACESTATE);
        headers.insert("tracestate", HeaderValue::from_str(&huge).unwrap());
        let out = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        assert!(out.span().span_context().trace_state().header().is_empty());
    }

    #[test]
    fn repeated_tracestate_fields_make_one_list() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(GOOD));
        headers.append("tracestate", HeaderValue::from_static("a=1,b=2"));
        headers.append("tracestate", HeaderValue::from_static("c=3"));
        let p = TraceContextPropagator::new();
        let out = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
        let span = out.span();
        let state = span.span_context().trace_state();
        assert_eq!(
            (state.get("a"), state.get("b"), state.get("c")),
            (Some("1"), Some("2"), Some("3"))
        );
    }

    #[test]
    fn nothing_is_injected_without_a_valid_span() {
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new(), &mut HeaderInjector(&mut headers));
        assert!(headers.is_empty());
    }
}
