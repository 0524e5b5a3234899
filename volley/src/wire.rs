//! A tiny protobuf wire-format reader and writer for the few fixed messages the protocols
//! embed (`google.rpc.Status`, `google.protobuf.Any`), so the runtime needs no generated code.

/// A decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Malformed wire data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    if v != 0 {
        put_varint(out, u64::from(number) << 3);
        put_varint(out, v);
    }
}

pub(crate) fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_varint(out, (u64::from(number) << 3) | 2);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(Malformed)?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

/// Iterates over `(field number, value)` pairs; stops after the first error.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), Malformed> {
        let key = get_varint(&mut self.buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        let value = match key & 7 {
            0 => Value::Varint(get_varint(&mut self.buf)?),
            1 => {
                let (head, rest) = self.buf.split_at_checked(8).ok_or(Malformed)?;
                self.buf = rest;
                Value::Fixed64(u64::from_le_bytes(head.try_into().map_err(|_| Malformed)?))
            }
            2 => {
                let len = usize::try_from(get_varint(&mut self.buf)?).map_err(|_| Malformed)?;
                let (head, rest) = self.buf.split_at_checked(len).ok_or(Malformed)?;
                self.buf = rest;
                Value::Bytes(head)
            }
            5 => {
                let (head, rest) = self.buf.split_at_checked(4).ok_or(Malformed)?;
                self.buf = rest;
                Value::Fixed32(u32::from_le_bytes(head.try_into().map_err(|_| Malformed)?))
            }
            _ => return Err(Malformed),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut out = Vec::new();
        put_varint_field(&mut out, 1, 300);
        put_bytes_field(&mut out, 2, b"hi");
        let fields: Vec<_> = Fields::new(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            vec![(1, Value::Varint(300)), (2, Value::Bytes(b"hi"))]
        );
        let truncated = &out[..out.len() - 1];
        assert!(Fields::new(truncated).any(|f| f.is_err()));
    }
}
