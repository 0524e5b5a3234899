//! gRPC over HTTP/2: enveloped messages, status in HTTP trailers, trailers-only responses for
//! immediate errors.

use http::{HeaderMap, HeaderValue};

use crate::headers::{
    GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS, decode_binary_header, decode_grpc_message,
    encode_binary_header, encode_grpc_message,
};
use crate::{Code, Error};

/// The status trailers for a finished call: `grpc-status`, `grpc-message`,
/// `grpc-status-details-bin`, then the application's trailers and the error's metadata.
pub(crate) fn status_trailers(error: Option<&Error>, trailers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(trailers.len() + 3);
    crate::headers::copy_user_headers(trailers, &mut out);
    match error {
        None => {
            out.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        }
        Some(err) => {
            out.insert(GRPC_STATUS, HeaderValue::from(err.code().as_u32()));
            if !err.message().is_empty()
                && let Ok(v) = HeaderValue::try_from(encode_grpc_message(err.message()))
            {
                out.insert(GRPC_MESSAGE, v);
            }
            if !err.details().is_empty() {
                out.insert(
                    GRPC_STATUS_DETAILS,
                    encode_binary_header(&err.to_status_proto()),
                );
            }
            crate::headers::copy_user_headers(err.metadata(), &mut out);
        }
    }
    out
}

/// Reads a status out of trailers (or the headers of a trailers-only response).
/// `Ok` carries the remaining metadata; `None` when there is no `grpc-status` at all.
pub(crate) fn parse_status(map: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
    let status = map.get(GRPC_STATUS)?;
    let mut metadata = HeaderMap::new();
    crate::headers::copy_user_headers(map, &mut metadata);
    let code = match status
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        Some(0) => return Some(Ok(metadata)),
        Some(n) => Code::from_u32(n).unwrap_or(Code::Unknown),
        None => {
            return Some(Err(Error::internal(format!(
                "protocol error: invalid grpc-status {status:?}"
            ))));
        }
    };
    let message = map
        .get(GRPC_MESSAGE)
        .map(|v| decode_grpc_message(v.as_bytes()))
        .unwrap_or_default();
    let mut err = match map
        .get(GRPC_STATUS_DETAILS)
        .and_then(decode_binary_header)
        .and_then(|b| Error::from_status_proto(&b))
    {
        // The details carry the authoritative status; the headers win on a mismatch, as
        // other implementations do, but the details list is kept.
        Some(from_details) => {
            let mut e = Error::new(code, message);
            for d in from_details.details() {
                e.push_detail(d.clone());
            }
            e
        }
        None => Error::new(code, message),
    };
    err.metadata_mut().extend(metadata);
    Some(Err(err.into_wire()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorDetail;

    #[test]
    fn status_round_trip() {
        let err = Error::new(Code::NotFound, "no such thing: 100%")
            .with_detail(ErrorDetail::new("x.Y", vec![1]));
        let mut user = HeaderMap::new();
        user.insert("x-user", HeaderValue::from_static("v"));
        let t = status_trailers(Some(&err), &user);
        assert_eq!(t[GRPC_STATUS], "5");
        assert_eq!(t[GRPC_MESSAGE], "no such thing: 100%25");
        let back = parse_status(&t).unwrap().unwrap_err();
        assert_eq!(back.code(), Code::NotFound);
        assert_eq!(back.message(), "no such thing: 100%");
        assert_eq!(back.details().len(), 1);
        assert_eq!(back.metadata()["x-user"], "v");
        let ok = parse_status(&status_trailers(None, &user))
            .unwrap()
            .unwrap();
        assert_eq!(ok["x-user"], "v");
        assert!(parse_status(&HeaderMap::new()).is_none());
    }
}
