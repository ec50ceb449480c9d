//! Typed, zero-copy views of the inbox handed to `agent_receive`.
//!
//! The inbox is a batch of we-abi message records living in the exchange
//! buffer; [`Inbox`] walks it and yields [`Message`]s that borrow their payload
//! in place. The runtime checks the whole batch before the agent sees it, so
//! iteration never meets a malformed record.

use crate::tensor::{f32_values, i64_values};
use we_abi::tensor::{TensorView, Tensors, read_result_header};
use we_abi::{MessageHeader, Records, msg_kind};

/// One message of an inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    header: MessageHeader,
    payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// A message from its header and payload (for tests and tools).
    pub fn new(header: MessageHeader, payload: &'a [u8]) -> Self {
        Self { header, payload }
    }

    /// The raw header.
    pub fn header(&self) -> MessageHeader {
        self.header
    }

    /// The sending agent, or a `we_abi::SENDER_*` constant.
    pub fn sender(&self) -> u32 {
        self.header.sender
    }

    /// One of [`we_abi::msg_kind`].
    pub fn kind(&self) -> u16 {
        self.header.kind
    }

    /// The raw channel word: topic, inference request tag, or 0.
    pub fn channel(&self) -> u32 {
        self.header.channel
    }

    /// The topic, for a message published to a topic.
    pub fn topic(&self) -> Option<u32> {
        (self.header.kind == msg_kind::TOPIC).then_some(self.header.channel)
    }

    /// The request tag, for an inference result or error.
    pub fn tag(&self) -> Option<u32> {
        matches!(
            self.header.kind,
            msg_kind::INFER_RESULT | msg_kind::INFER_ERROR
        )
        .then_some(self.header.channel)
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The first 8 payload bytes as a little-endian `u64` (missing bytes read as 0).
    #[inline]
    pub fn u64(&self) -> u64 {
        // Element by element into a fixed array: no copy of a run-time length
        // (which a guest makes a `memory.copy` call).
        if let Some(Ok(w)) = self.payload.get(..8).map(<[u8; 8]>::try_from) {
            return u64::from_le_bytes(w);
        }
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(self.payload) {
            *d = *s;
        }
        u64::from_le_bytes(w)
    }

    /// A direct message sent with `send`.
    pub fn is_direct(&self) -> bool {
        self.header.kind == msg_kind::DIRECT
    }

    /// A message published to a topic.
    pub fn is_topic(&self) -> bool {
        self.header.kind == msg_kind::TOPIC
    }

    /// The result of an inference request.
    pub fn is_inference_result(&self) -> bool {
        self.header.kind == msg_kind::INFER_RESULT
    }

    /// A failed inference request; [`Message::error_text`] says why.
    pub fn is_inference_error(&self) -> bool {
        self.header.kind == msg_kind::INFER_ERROR
    }

    /// A notice from the runtime.
    pub fn is_system(&self) -> bool {
        self.header.kind == msg_kind::SYSTEM
    }

    /// The reason of a failed inference request, if the payload is UTF-8.
    pub fn error_text(&self) -> Option<&'a str> {
        if !self.is_inference_error() {
            return None;
        }
        core::str::from_utf8(self.payload).ok()
    }

    /// The tensors of an inference result; empty for any other kind of message.
    pub fn tensors(&self) -> Tensors<'a> {
        if !self.is_inference_result() {
            return Tensors::new(&[]);
        }
        match read_result_header(self.payload) {
            Ok((_, body)) => Tensors::new(body),
            Err(_) => Tensors::new(&[]),
        }
    }

    /// The result tensor called `name`; `None` if absent or the payload is malformed.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        for t in self.tensors() {
            let t = t.ok()?;
            if t.name == name.as_bytes() {
                return Some(t);
            }
        }
        None
    }

    /// The elements of the f32 result tensor called `name`.
    pub fn tensor_f32(&self, name: &str) -> Option<Vec<f32>> {
        Some(f32_values(&self.tensor(name)?)?.collect())
    }

    /// The elements of the i64 result tensor called `name`.
    pub fn tensor_i64(&self, name: &str) -> Option<Vec<i64>> {
        Some(i64_values(&self.tensor(name)?)?.collect())
    }
}

/// The whole inbox of one tick, in delivery order (sender id, then emission index).
#[derive(Clone, Copy, Debug)]
pub struct Inbox<'a> {
    bytes: &'a [u8],
    /// The number of records, when [`Inbox::checked`] counted them.
    counted: Option<usize>,
}

impl<'a> Inbox<'a> {
    /// An inbox over message records. Malformed records end the iteration; use
    /// [`Inbox::checked`] on bytes that did not come from the runtime.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            counted: None,
        }
    }

    /// An inbox over `bytes` if every record in them is well formed, with its
    /// message count known (so [`Inbox::len`] costs nothing); `None` otherwise.
    pub fn checked(bytes: &'a [u8]) -> Option<Self> {
        let n = Self::check(bytes)?;
        Some(Self {
            bytes,
            counted: Some(n),
        })
    }

    /// An inbox over `bytes` that the runtime says holds `count` messages (the
    /// step context's `inbox_len`), taken on trust: no walk ahead of time.
    /// Iteration still checks every record and stops at a malformed one.
    pub fn counted(bytes: &'a [u8], count: usize) -> Self {
        Self {
            bytes,
            counted: Some(count),
        }
    }

    /// Number of well-formed records, counted by walking the headers.
    pub fn check(bytes: &[u8]) -> Option<usize> {
        let mut n = 0usize;
        for r in Records::new(bytes) {
            r.ok()?;
            n += 1;
        }
        Some(n)
    }

    /// The raw record bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of messages (walks the headers unless they were counted).
    pub fn len(&self) -> usize {
        self.counted.unwrap_or_else(|| self.iter().count())
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The messages, in delivery order.
    pub fn iter(&self) -> InboxIter<'a> {
        InboxIter {
            records: Records::new(self.bytes),
        }
    }
}

impl<'a> IntoIterator for Inbox<'a> {
    type Item = Message<'a>;
    type IntoIter = InboxIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &Inbox<'a> {
    type Item = Message<'a>;
    type IntoIter = InboxIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the messages of an [`Inbox`].
#[derive(Clone, Debug)]
pub struct InboxIter<'a> {
    records: Records<'a>,
}

impl<'a> Iterator for InboxIter<'a> {
    type Item = Message<'a>;

    #[inline]
    fn next(&mut self) -> Option<Message<'a>> {
        let (header, payload) = self.records.next()?.ok()?;
        let header = MessageHeader::decode(header)?;
        Some(Message { header, payload })
    }
}
