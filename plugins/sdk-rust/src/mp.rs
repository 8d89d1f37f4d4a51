//! A small, strict MsgPack codec: [`Value`], [`decode`], [`Writer`].
//!
//! It covers every MsgPack type: nil, bool, integers (all widths), float32
//! and float64, str, bin, array, map and ext. Decoding is strict and never
//! panics: truncated input, the reserved byte `0xc1`, a str that is not
//! UTF-8, nesting deeper than [`MAX_DEPTH`] containers or bytes after the
//! value are errors ([`DecodeError`]). A length header is checked against
//! the bytes that are left before anything is allocated, so a short input
//! cannot make the decoder allocate much.
//!
//! Every encoding of a value is accepted (an int8 or a uint64 both decode to
//! [`Value::Int`]); [`Writer`] always writes the shortest one, as the host's
//! Go encoder does.

use std::fmt;

/// The most containers (arrays and maps) a decoded value may nest.
pub const MAX_DEPTH: usize = 128;

/// A decoded MsgPack value.
///
/// Integers are normalised: every integer that fits an `i64` is an
/// [`Value::Int`], whatever its encoding; only the unsigned ones above
/// `i64::MAX` are [`Value::Uint`]. float32 decodes to [`Value::Float`].
/// A map keeps its pairs in the order of the input, duplicates included
/// ([`Value::get`] takes the last).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    Uint(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// An extension value: type and data.
    Ext(i8, Vec<u8>),
}

impl Value {
    /// Builds a map value from pairs of anything convertible to a Value.
    pub fn map<K: Into<Value>, I: IntoIterator<Item = (K, Value)>>(pairs: I) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value of field `key` of a map: the last pair whose key is the str
    /// (or bin) `key`. None if this is not a map or has no such field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if it is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The integer, if it is one that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(n) if n >= 0 => Some(n as u64),
            Value::Uint(n) => Some(n),
            _ => None,
        }
    }

    /// The number as a float: a float, or an integer (which may round).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::Int(n) => Some(n as f64),
            Value::Uint(n) => Some(n as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a str or a bin. The HTTP API and the CLI send JSON
    /// strings as str and `{"$b64": ...}` as bin; most plugins should accept
    /// both wherever they take bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value's MsgPack type, for error messages: "nil", "bool", "int",
    /// "float", "str", "bin", "array", "map" or "ext".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::Uint(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
        }
    }

    /// The value's MsgPack encoding (the shortest one).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.value(self);
        w.into_bytes()
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value { Value::Int(n as i64) }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, isize);

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                let n = n as u64;
                if n > i64::MAX as u64 { Value::Uint(n) } else { Value::Int(n as i64) }
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64, usize);

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}
impl From<f32> for Value {
    fn from(f: f32) -> Value {
        Value::Float(f as f64)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Str(s.clone())
    }
}
/// Bytes become a bin.
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Bin(b.to_vec())
    }
}
/// Bytes become a bin.
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bin(b)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}
/// None becomes nil.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        match o {
            Some(v) => v.into(),
            None => Value::Nil,
        }
    }
}

/// Builds a [`Value::Map`] with str keys:
/// `map!{"name" => name, "max" => 7}`. Values are converted with `Into<Value>`.
#[macro_export]
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::mp::Value::Map(vec![$(($crate::mp::Value::from($k), $crate::mp::Value::from($v))),*])
    };
}

/// Why an input is not one well-formed MsgPack value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The offset in the input where decoding failed.
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ends inside a value (or is empty).
    Truncated,
    /// The byte 0xc1, which MsgPack reserves.
    Reserved,
    /// A str that is not valid UTF-8.
    InvalidUtf8,
    /// More than [`MAX_DEPTH`] nested containers.
    TooDeep,
    /// Bytes after the value.
    Trailing(usize),
    /// A value of another type than the one expected ([`Reader`] methods).
    Type { want: &'static str, got: u8 },
    /// An integer outside the range expected.
    Range(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Truncated => write!(f, "invalid msgpack: truncated at byte {}", self.offset),
            ErrorKind::Reserved => write!(f, "invalid msgpack: reserved byte 0xc1 at byte {}", self.offset),
            ErrorKind::InvalidUtf8 => write!(f, "invalid msgpack: str at byte {} is not UTF-8", self.offset),
            ErrorKind::TooDeep => write!(f, "invalid msgpack: nested deeper than {} at byte {}", MAX_DEPTH, self.offset),
            ErrorKind::Trailing(n) => write!(f, "invalid msgpack: {} bytes after the value", n),
            ErrorKind::Type { want, got } => {
                write!(f, "expected {} at byte {}, found 0x{:02x}", want, self.offset, got)
            }
            ErrorKind::Range(what) => write!(f, "{} out of range at byte {}", what, self.offset),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one MsgPack value: bytes after it are an error.
pub fn decode(b: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(b);
    let v = r.value()?;
    r.finish()?;
    Ok(v)
}

/// A cursor over MsgPack input that reads one value or one header at a
/// time, borrowing str and bin contents from the input (no copies). It is
/// what the SDK decodes batches and scan answers with; [`decode`] is built
/// on it.
pub struct Reader<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, off: 0 }
    }

    /// The offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.off
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.b.len() - self.off
    }

    /// An error unless every byte has been read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.err(ErrorKind::Trailing(n))),
        }
    }

    fn err(&self, kind: ErrorKind) -> DecodeError {
        DecodeError { offset: self.off, kind }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        match self.b.get(self.off) {
            Some(&c) => Ok(c),
            None => Err(self.err(ErrorKind::Truncated)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.err(ErrorKind::Truncated));
        }
        let s = &self.b[self.off..self.off + n];
        self.off += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let s = self.take(n)?;
        Ok(s.iter().fold(0u64, |acc, &c| acc << 8 | c as u64))
    }

    fn type_err<T>(&self, want: &'static str) -> Result<T, DecodeError> {
        let got = self.peek()?;
        Err(self.err(ErrorKind::Type { want, got }))
    }

    /// Reads an array header: the number of elements that follow.
    pub fn array_len(&mut self) -> Result<usize, DecodeError> {
        let c = self.peek()?;
        let n = match c {
            0x90..=0x9f => {
                self.off += 1;
                (c & 0x0f) as u64
            }
            0xdc => {
                self.off += 1;
                self.be(2)?
            }
            0xdd => {
                self.off += 1;
                self.be(4)?
            }
            _ => return self.type_err("an array"),
        };
        Ok(n as usize)
    }

    /// Reads a map header: the number of key/value pairs that follow.
    pub fn map_len(&mut self) -> Result<usize, DecodeError> {
        let c = self.peek()?;
        let n = match c {
            0x80..=0x8f => {
                self.off += 1;
                (c & 0x0f) as u64
            }
            0xde => {
                self.off += 1;
                self.be(2)?
            }
            0xdf => {
                self.off += 1;
                self.be(4)?
            }
            _ => return self.type_err("a map"),
        };
        Ok(n as usize)
    }

    /// Reads an integer of any encoding that fits a `u64`.
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        let at = self.off;
        match self.int()? {
            Value::Int(n) if n >= 0 => Ok(n as u64),
            Value::Uint(n) => Ok(n),
            _ => Err(DecodeError { offset: at, kind: ErrorKind::Range("unsigned integer") }),
        }
    }

    /// Reads an integer of any encoding that fits an `i64`.
    pub fn sint(&mut self) -> Result<i64, DecodeError> {
        let at = self.off;
        match self.int()? {
            Value::Int(n) => Ok(n),
            _ => Err(DecodeError { offset: at, kind: ErrorKind::Range("signed 64-bit integer") }),
        }
    }

    fn int(&mut self) -> Result<Value, DecodeError> {
        let c = self.peek()?;
        let v = match c {
            0x00..=0x7f => {
                self.off += 1;
                Value::Int(c as i64)
            }
            0xe0..=0xff => {
                self.off += 1;
                Value::Int(c as i8 as i64)
            }
            0xcc..=0xcf => {
                self.off += 1;
                Value::from(self.be(1 << (c - 0xcc))?)
            }
            0xd0..=0xd3 => {
                self.off += 1;
                let n = 1usize << (c - 0xd0);
                let raw = self.be(n)?;
                let shift = 64 - 8 * n as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            }
            _ => return self.type_err("an integer"),
        };
        Ok(v)
    }

    /// Reads a bin (or nil, as empty bytes), borrowing it from the input.
    pub fn bin_or_nil(&mut self) -> Result<&'a [u8], DecodeError> {
        let c = self.peek()?;
        let n = match c {
            0xc0 => {
                self.off += 1;
                return Ok(&[]);
            }
            0xc4 => {
                self.off += 1;
                self.be(1)?
            }
            0xc5 => {
                self.off += 1;
                self.be(2)?
            }
            0xc6 => {
                self.off += 1;
                self.be(4)?
            }
            _ => return self.type_err("a bin"),
        };
        self.take(n as usize)
    }

    /// Reads one whole value.
    pub fn value(&mut self) -> Result<Value, DecodeError> {
        self.value_at(0)
    }

    /// Skips one whole value.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.value_at(0).map(|_| ())
    }

    fn container(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(ErrorKind::TooDeep));
        }
        Ok(())
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let c = self.peek()?;
        let start = self.off;
        let v = match c {
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => self.int()?,
            0xc0 => {
                self.off += 1;
                Value::Nil
            }
            0xc1 => return Err(self.err(ErrorKind::Reserved)),
            0xc2 | 0xc3 => {
                self.off += 1;
                Value::Bool(c == 0xc3)
            }
            0xca => {
                self.off += 1;
                Value::Float(f32::from_bits(self.be(4)? as u32) as f64)
            }
            0xcb => {
                self.off += 1;
                Value::Float(f64::from_bits(self.be(8)?))
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.off += 1;
                let n = match c {
                    0xd9 => self.be(1)?,
                    0xda => self.be(2)?,
                    0xdb => self.be(4)?,
                    _ => (c & 0x1f) as u64,
                };
                let s = self.take(n as usize)?;
                match std::str::from_utf8(s) {
                    Ok(s) => Value::Str(s.to_string()),
                    Err(_) => return Err(DecodeError { offset: start, kind: ErrorKind::InvalidUtf8 }),
                }
            }
            0xc4..=0xc6 => Value::Bin(self.bin_or_nil()?.to_vec()),
            0x90..=0x9f | 0xdc | 0xdd => {
                self.container(depth)?;
                let n = self.array_len()?;
                // Every element takes at least one byte: a header claiming
                // more than what is left is truncated, not an allocation.
                if n > self.remaining() {
                    return Err(self.err(ErrorKind::Truncated));
                }
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value_at(depth + 1)?);
                }
                Value::Array(a)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                self.container(depth)?;
                let n = self.map_len()?;
                if n > self.remaining() / 2 {
                    return Err(self.err(ErrorKind::Truncated));
                }
                let mut m = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value_at(depth + 1)?;
                    let v = self.value_at(depth + 1)?;
                    m.push((k, v));
                }
                Value::Map(m)
            }
            0xd4..=0xd8 | 0xc7..=0xc9 => {
                self.off += 1;
                let n = match c {
                    0xd4..=0xd8 => 1usize << (c - 0xd4),
                    0xc7 => self.be(1)? as usize,
                    0xc8 => self.be(2)? as usize,
                    _ => self.be(4)? as usize,
                };
                let t = self.take(1)?[0] as i8;
                Value::Ext(t, self.take(n)?.to_vec())
            }
        };
        Ok(v)
    }
}

/// Writes MsgPack, always in the shortest encoding.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn nil(&mut self) -> &mut Self {
        self.buf.push(0xc0);
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
        self
    }

    pub fn uint(&mut self, n: u64) -> &mut Self {
        if n < 0x80 {
            self.buf.push(n as u8);
        } else if n <= u8::MAX as u64 {
            self.buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= u16::MAX as u64 {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u32::MAX as u64 {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    pub fn int(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            return self.uint(n as u64);
        }
        if n >= -32 {
            self.buf.push(n as u8);
        } else if n >= i8::MIN as i64 {
            self.buf.extend_from_slice(&[0xd0, n as u8]);
        } else if n >= i16::MIN as i64 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(n as i16).to_be_bytes());
        } else if n >= i32::MIN as i64 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(n as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    /// Writes a float64.
    pub fn float(&mut self, f: f64) -> &mut Self {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&f.to_bits().to_be_bytes());
        self
    }

    fn header(&mut self, n: usize, fix: Option<(u8, usize)>, codes: [u8; 3]) {
        match fix {
            Some((base, max)) if n <= max => self.buf.push(base | n as u8),
            _ if n <= u8::MAX as usize && codes[0] != 0 => self.buf.extend_from_slice(&[codes[0], n as u8]),
            _ if n <= u16::MAX as usize => {
                self.buf.push(codes[1]);
                self.buf.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                // Lengths above u32::MAX cannot be encoded; nothing in
                // raftkv comes near (a result is at most 4 MiB).
                assert!(n <= u32::MAX as usize, "msgpack: length {} over 2^32-1", n);
                self.buf.push(codes[2]);
                self.buf.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.header(s.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb]);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    pub fn bin(&mut self, b: &[u8]) -> &mut Self {
        self.header(b.len(), None, [0xc4, 0xc5, 0xc6]);
        self.buf.extend_from_slice(b);
        self
    }

    /// Writes an array header; the `n` elements follow.
    pub fn array(&mut self, n: usize) -> &mut Self {
        self.header(n, Some((0x90, 15)), [0, 0xdc, 0xdd]);
        self
    }

    /// Writes a map header; the `n` key/value pairs follow.
    pub fn map(&mut self, n: usize) -> &mut Self {
        self.header(n, Some((0x80, 15)), [0, 0xde, 0xdf]);
        self
    }

    pub fn ext(&mut self, t: i8, data: &[u8]) -> &mut Self {
        let n = data.len();
        match n {
            1 => self.buf.push(0xd4),
            2 => self.buf.push(0xd5),
            4 => self.buf.push(0xd6),
            8 => self.buf.push(0xd7),
            16 => self.buf.push(0xd8),
            _ => self.header(n, None, [0xc7, 0xc8, 0xc9]),
        }
        self.buf.push(t as u8);
        self.buf.extend_from_slice(data);
        self
    }

    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(n) => self.int(*n),
            Value::Uint(n) => self.uint(*n),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.str(s),
            Value::Bin(b) => self.bin(b),
            Value::Array(a) => {
                self.array(a.len());
                for e in a {
                    self.value(e);
                }
                self
            }
            Value::Map(m) => {
                self.map(m.len());
                for (k, e) in m {
                    self.value(k);
                    self.value(e);
                }
                self
            }
            Value::Ext(t, d) => self.ext(*t, d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // Every integer boundary encodes to the shortest form and back.
    #[test]
    fn ints_round_trip_shortest() {
        let cases: &[(i64, &str)] = &[
            (0, "00"),
            (127, "7f"),
            (128, "cc80"),
            (255, "ccff"),
            (256, "cd0100"),
            (65535, "cdffff"),
            (65536, "ce00010000"),
            (u32::MAX as i64, "ceffffffff"),
            (1 << 32, "cf0000000100000000"),
            (i64::MAX, "cf7fffffffffffffff"),
            (-1, "ff"),
            (-32, "e0"),
            (-33, "d0df"),
            (-128, "d080"),
            (-129, "d1ff7f"),
            (-32768, "d18000"),
            (-32769, "d2ffff7fff"),
            (i32::MIN as i64, "d280000000"),
            (i32::MIN as i64 - 1, "d3ffffffff7fffffff"),
            (i64::MIN, "d38000000000000000"),
        ];
        for &(n, h) in cases {
            let b = Value::Int(n).to_bytes();
            assert_eq!(b, hex(h), "encoding {}", n);
            assert_eq!(decode(&b), Ok(Value::Int(n)), "decoding {}", h);
        }
        assert_eq!(Value::from(u64::MAX).to_bytes(), hex("cfffffffffffffffff"));
        assert_eq!(decode(&hex("cfffffffffffffffff")), Ok(Value::Uint(u64::MAX)));
        assert_eq!(decode(&hex("cf8000000000000000")), Ok(Value::Uint(1 << 63)));
        // Longer encodings than needed are accepted and normalised.
        for h in ["cf0000000000000005", "d30000000000000005", "d005", "cc05", "cd0005", "d200000005"] {
            assert_eq!(decode(&hex(h)), Ok(Value::Int(5)), "{}", h);
        }
        assert_eq!(decode(&hex("d3ffffffffffffffff")), Ok(Value::Int(-1)));
        assert_eq!(decode(&hex("d1ff9c")), Ok(Value::Int(-100)));
    }

    #[test]
    fn every_type_round_trips() {
        let long = "x".repeat(70000);
        let v = Value::Array(vec![
            Value::Nil,
            Value::Bool(true),
            Value::Bool(false),
            Value::Float(1.5),
            Value::Float(-0.0),
            Value::from("héllo"),
            Value::from(""),
            Value::from("y".repeat(31)),
            Value::from("y".repeat(32)),
            Value::from("y".repeat(256)),
            Value::from(long.clone()),
            Value::from(vec![0u8, 0xff]),
            Value::from(Vec::<u8>::new()),
            Value::from(vec![7u8; 300]),
            Value::from(vec![7u8; 70000]),
            Value::Array((0..20).map(Value::from).collect()),
            Value::Array((0..70000).map(|_| Value::Nil).collect()),
            map! {"a" => 1, "b" => Value::Nil, "a" => "dup"},
            Value::map((0..17).map(|i| (i, Value::Bool(i % 2 == 0)))),
            Value::Ext(-1, vec![1, 2, 3, 4]),
            Value::Ext(5, vec![9; 3]),
            Value::Ext(5, vec![]),
            Value::Ext(5, vec![1; 16]),
            Value::Ext(5, vec![1; 300]),
        ]);
        let b = v.to_bytes();
        assert_eq!(decode(&b), Ok(v.clone()));
        // Headers: str8 for 32 bytes, bin8 for 2, map16 for 17 pairs.
        assert_eq!(&Value::from("y".repeat(32)).to_bytes()[..2], &[0xd9, 32]);
        assert_eq!(&Value::from(vec![0u8, 1]).to_bytes()[..2], &[0xc4, 2]);
        assert_eq!(&Value::map((0..17).map(|i| (i, Value::Nil))).to_bytes()[..3], &[0xde, 0, 17]);
        assert_eq!(Value::from(long).to_bytes()[0], 0xdb);
        // float32 decodes to a float.
        assert_eq!(decode(&hex("ca3fc00000")), Ok(Value::Float(1.5)));
        assert_eq!(v.get("a"), None); // not a map
        assert_eq!(map! {"a" => 1, "a" => 2}.get("a"), Some(&Value::Int(2)));
        assert_eq!(Value::Map(vec![(Value::Bin(b"k".to_vec()), Value::Int(1))]).get("k"), Some(&Value::Int(1)));
    }

    // The reference encodings in abi/testdata (the Go encoder's) decode to
    // what abi_test.go encoded, and re-encode to the same bytes where the Go
    // side used the shortest forms.
    #[test]
    fn abi_goldens() {
        let golden = |name: &str| {
            let path = format!("{}/../../abi/testdata/{}.golden", env!("CARGO_MANIFEST_DIR"), name);
            hex(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}", path, e)))
        };
        let info = decode(&golden("info")).unwrap();
        assert_eq!(info, map! {"name" => "kv", "version" => "1.0.0", "description" => "key-value store"});
        assert_eq!(info.to_bytes(), golden("info"));
        let m = decode(&golden("migration")).unwrap();
        assert_eq!(m, map! {"from_hash" => "ab12", "from_version" => "1.0.0", "index" => 42});
        let recs = decode(&golden("records")).unwrap();
        assert_eq!(
            recs,
            Value::Array(vec![
                Value::Array(vec![b"a".to_vec().into(), b"1".to_vec().into(), 7.into()]),
                Value::Array(vec![vec![0u8, 0xff].into(), Value::Nil, (1u64 << 40).into()]),
            ])
        );
        let batch = decode(&golden("batch")).unwrap();
        assert_eq!(
            batch,
            Value::Array(vec![
                Value::Array(vec![1.into(), 1.into(), 1700000000000000000i64.into(), b"hello".to_vec().into()]),
                Value::Array(vec![300.into(), 2.into(), (-1).into(), Vec::<u8>::new().into()]),
            ])
        );
    }

    #[test]
    fn malformed_is_an_error() {
        let cases: &[(&str, ErrorKind)] = &[
            ("", ErrorKind::Truncated),
            ("c1", ErrorKind::Reserved),
            ("cd00", ErrorKind::Truncated),
            ("a3616263ff", ErrorKind::Trailing(1)),
            ("a2ff00", ErrorKind::InvalidUtf8),
            ("dbffffffff", ErrorKind::Truncated),
            ("c6ffffffff00", ErrorKind::Truncated),
            ("ddffffffff", ErrorKind::Truncated),
            ("dfffffffff", ErrorKind::Truncated),
            ("dd0000000201", ErrorKind::Truncated),
            ("8101", ErrorKind::Truncated),
            ("82a161", ErrorKind::Truncated),
            ("d6010203", ErrorKind::Truncated),
            ("c7ff01", ErrorKind::Truncated),
            ("9191c1", ErrorKind::Reserved),
        ];
        for (h, kind) in cases {
            match decode(&hex(h)) {
                Err(e) => assert_eq!(&e.kind, kind, "{}: {}", h, e),
                Ok(v) => panic!("{} decoded to {:?}", h, v),
            }
        }
        // Nesting: MAX_DEPTH containers decode, one more does not.
        let mut ok = vec![0x91u8; MAX_DEPTH - 1];
        ok.push(0x90);
        assert!(decode(&ok).is_ok());
        let mut deep = vec![0x91u8; MAX_DEPTH];
        deep.push(0x90);
        assert_eq!(decode(&deep).unwrap_err().kind, ErrorKind::TooDeep);
        // A very deep input is refused without recursing through it.
        let deep = vec![0x81u8; 1 << 20];
        assert_eq!(decode(&deep).unwrap_err().kind, ErrorKind::TooDeep);
        let e = decode(&hex("c1")).unwrap_err();
        assert_eq!(e.to_string(), "invalid msgpack: reserved byte 0xc1 at byte 0");
    }

    // Every prefix and every single-bit flip of a valid encoding decodes or
    // fails with an error; nothing panics, nothing loops. Plus random bytes
    // from a fixed-seed generator.
    #[test]
    fn garbage_never_panics() {
        let v = map! {
            "op" => "set", "key" => vec![0u8, 1, 2], "n" => -70000, "f" => 2.5,
            "l" => Value::Array(vec![Value::Nil, true.into(), u64::MAX.into(), Value::Ext(1, vec![1, 2])]),
            "m" => map! {"x" => "y".repeat(40)},
        };
        let b = v.to_bytes();
        for i in 0..b.len() {
            assert!(decode(&b[..i]).is_err(), "prefix of {} bytes decoded", i);
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                let _ = decode(&c);
            }
        }
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20000 {
            let mut g = Vec::new();
            for _ in 0..(x % 48) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                g.push(x as u8);
            }
            let _ = decode(&g);
            x = x.wrapping_add(1);
        }
    }

    #[test]
    fn reader_typed() {
        let b = hex("93 cf0000000000000007 d3ffffffffffffffff c0");
        let mut r = Reader::new(&b);
        assert_eq!(r.array_len(), Ok(3));
        assert_eq!(r.uint(), Ok(7));
        assert_eq!(r.sint(), Ok(-1));
        assert_eq!(r.bin_or_nil(), Ok(&[][..]));
        assert!(r.finish().is_ok());
        let mut r = Reader::new(&[0xff]);
        assert_eq!(r.uint().unwrap_err().kind, ErrorKind::Range("unsigned integer"));
        let b = hex("cfffffffffffffffff");
        assert_eq!(Reader::new(&b).sint().unwrap_err().kind, ErrorKind::Range("signed 64-bit integer"));
        let mut r = Reader::new(&[0xa1, b'x']);
        assert_eq!(r.bin_or_nil().unwrap_err().kind, ErrorKind::Type { want: "a bin", got: 0xa1 });
    }
}
