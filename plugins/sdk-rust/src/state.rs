//! State access: the [`State`] trait, its records and key ranges.

use crate::{code, Error, MAX_SCAN_LIMIT};

/// One key of a scan: its value and version (the log index of the entry
/// that last wrote it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version: u64,
}

/// The plugin's namespace of the host's ordered key-value store. Keys are
/// compared as unsigned bytes; every key has a version, the log index of the
/// entry that last wrote it.
///
/// Commands get `&mut dyn State`; queries get `&dyn State`, so a query that
/// tries to write does not compile. In a wasm module the State is the host's
/// (every call is a host function call); natively, in tests, it is a
/// [`MemState`](crate::MemState).
pub trait State {
    /// The value and version of `key`, or None if it is absent. An empty key
    /// is never present; a key over 4 KiB is an error (`too_large`).
    fn get_versioned(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, Error>;

    /// Stores `value` under `key` (a copy). Errors: an empty key
    /// (`bad_request`), a key over 4 KiB or a value over 1 MiB (`too_large`).
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error>;

    /// Deletes `key`; true if it existed.
    fn delete(&mut self, key: &[u8]) -> Result<bool, Error>;

    /// At most `limit` (1..=10000) records with `start <= key < end` in
    /// ascending key order; an empty `end` means no upper bound. Fewer than
    /// `limit` records means the range has no more. An answer whose
    /// encoding would exceed [`MAX_SCAN_BYTES`](crate::MAX_SCAN_BYTES) is a
    /// `too_large` error. See [`range`](#method.range) to visit a range of
    /// any size.
    fn scan(&self, start: &[u8], end: &[u8], limit: u32) -> Result<Vec<Record>, Error>;

    /// The value of `key`, or None if it is absent.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_versioned(key)?.map(|(v, _)| v))
    }
}

impl<'s> dyn State + 's {
    /// Every record with `start <= key < end` (an empty `end`: no upper
    /// bound), in key order, fetched a page of up to [`PAGE`] records at a
    /// time (fewer while a page of large values would be too large).
    /// Each item is a `Result`: a failing scan ends the iteration with its
    /// error. The iterator borrows the state; collect what you want to
    /// change first.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Range<'_, 's> {
        Range { st: self, next: Some(start.to_vec()), end: end.to_vec(), limit: PAGE, page: Vec::new().into_iter() }
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn prefix(&self, prefix: &[u8]) -> Range<'_, 's> {
        let end = prefix_end(prefix);
        self.range(prefix, &end)
    }
}

/// Records per `state_scan` call made by [`Range`].
pub const PAGE: u32 = 1000;

/// An iterator over a key range; see [`range`](trait.State.html#method.range).
pub struct Range<'a, 's> {
    st: &'a (dyn State + 's),
    next: Option<Vec<u8>>, // where the next page starts; None when done
    end: Vec<u8>,
    limit: u32, // records per scan: PAGE, halved while answers are too large
    page: std::vec::IntoIter<Record>,
}

impl<'a, 's> Iterator for Range<'a, 's> {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.page.next() {
                return Some(Ok(r));
            }
            let start = self.next.take()?;
            let page = match self.st.scan(&start, &self.end, self.limit) {
                Ok(p) => p,
                Err(e) if e.code == code::TOO_LARGE && self.limit > 1 => {
                    self.limit /= 2;
                    self.next = Some(start);
                    continue;
                }
                Err(e) => return Some(Err(e)),
            };
            if page.len() as u32 == self.limit {
                // The smallest key after the last one: the last with a 0x00
                // byte appended.
                let mut after = page[page.len() - 1].key.clone();
                after.push(0);
                self.next = Some(after);
                self.limit = (self.limit * 2).min(PAGE);
            }
            if page.is_empty() {
                return None;
            }
            self.page = page.into_iter();
        }
    }
}

/// The end key of a scan over every key that starts with `prefix`: the
/// prefix with its last byte that is not 0xff incremented and the bytes
/// after it dropped. Empty (no upper bound) if `prefix` is empty or all
/// 0xff bytes.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&c| c != 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => Vec::new(),
    }
}

const _: () = assert!(PAGE <= MAX_SCAN_LIMIT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b""), b"");
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff0"), b"a\xff1");
        assert_eq!(prefix_end(b"\xff\xff"), b"");
        assert_eq!(prefix_end(b"ab\xfe\xff"), b"ab\xff");
    }
}
