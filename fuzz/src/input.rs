//! Turning fuzz input into split points and small numbers.
//!
//! The formats are plain bytes so that seeds can be written by hand: a header byte,
//! one byte per split point, then the payload (see each target for its header).

/// Reads bytes off the front of the input; yields zeros once it runs out.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian number.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }

    /// The next three bytes as a little-endian number.
    pub fn u24(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u8()) << 16
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// `count` piece lengths (each one byte: 0..=255; an empty piece is a legal empty
/// read) taken from `reader`.
pub fn piece_lengths(reader: &mut Reader<'_>, count: usize) -> Vec<usize> {
    (0..count).map(|_| usize::from(reader.u8())).collect()
}

/// Cuts `bytes` into pieces of the given lengths, the last piece being whatever is
/// left (lengths past the end are clamped). The pieces joined are always `bytes`.
pub fn split<'a>(bytes: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(lengths.len() + 1);
    let mut rest = bytes;
    for &len in lengths {
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

/// Bytes as an escaped string, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
