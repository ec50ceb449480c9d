//! Tensors for inference: borrowed inputs ([`TensorRef`]) encoded with
//! [`we_abi::tensor`], and element readers for the tensors of a result.

use crate::AgentError;
use std::borrow::Cow;
use we_abi::tensor::{self, TensorView};

/// The elements of a borrowed tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Elements<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// A named tensor borrowed from the agent, ready to be encoded into an
/// inference request without copying it first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef<'a> {
    name: &'a str,
    dims: &'a [u64],
    elements: Elements<'a>,
}

impl<'a> TensorRef<'a> {
    /// A float32 tensor with row-major `data` of shape `dims`.
    #[inline]
    pub fn f32(name: &'a str, dims: &'a [u64], data: &'a [f32]) -> Self {
        Self {
            name,
            dims,
            elements: Elements::F32(data),
        }
    }

    /// An int64 tensor with row-major `data` of shape `dims`.
    #[inline]
    pub fn i64(name: &'a str, dims: &'a [u64], data: &'a [i64]) -> Self {
        Self {
            name,
            dims,
            elements: Elements::I64(data),
        }
    }

    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The tensor's dims.
    pub fn dims(&self) -> &'a [u64] {
        self.dims
    }

    /// The we-abi dtype byte.
    #[inline]
    pub fn dtype(&self) -> u8 {
        match self.elements {
            Elements::F32(_) => tensor::DTYPE_F32,
            Elements::I64(_) => tensor::DTYPE_I64,
        }
    }

    #[inline]
    fn element_count(&self) -> usize {
        match self.elements {
            Elements::F32(d) => d.len(),
            Elements::I64(d) => d.len(),
        }
    }

    /// The elements as little-endian bytes: borrowed as they are on a
    /// little-endian target (wasm32, x86_64, aarch64), copied otherwise.
    #[inline]
    fn data_bytes(&self) -> Cow<'a, [u8]> {
        #[cfg(target_endian = "little")]
        {
            match self.elements {
                // SAFETY: f32 and i64 have no padding and every byte of them is
                // initialised, u8 has alignment 1, and the new slice covers exactly
                // the `size_of_val` bytes of the borrowed one for the same lifetime.
                // On a little-endian target these are the little-endian encodings.
                Elements::F32(d) => Cow::Borrowed(unsafe {
                    core::slice::from_raw_parts(d.as_ptr().cast::<u8>(), size_of_val(d))
                }),
                // SAFETY: as above.
                Elements::I64(d) => Cow::Borrowed(unsafe {
                    core::slice::from_raw_parts(d.as_ptr().cast::<u8>(), size_of_val(d))
                }),
            }
        }
        #[cfg(not(target_endian = "little"))]
        {
            match self.elements {
                Elements::F32(d) => Cow::Owned(d.iter().flat_map(|v| v.to_le_bytes()).collect()),
                Elements::I64(d) => Cow::Owned(d.iter().flat_map(|v| v.to_le_bytes()).collect()),
            }
        }
    }

    /// Checks the tensor against the ABI limits and returns its encoded size.
    #[inline]
    pub(crate) fn encoded_len(&self) -> Result<usize, AgentError> {
        if self.name.len() > u16::MAX as usize {
            return Err(AgentError::TooLarge {
                what: "tensor name",
                len: self.name.len(),
            });
        }
        if self.dims.len() > tensor::MAX_RANK {
            return Err(AgentError::BadTensor {
                what: "rank above we_abi::tensor::MAX_RANK",
            });
        }
        let expected = self
            .dims
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or(AgentError::BadTensor {
                what: "dims overflow",
            })?;
        if expected != self.element_count() as u64 {
            return Err(AgentError::BadTensor {
                what: "element count does not match dims",
            });
        }
        let elem = tensor::element_size(self.dtype()).unwrap_or(1);
        let data_len = self.element_count().saturating_mul(elem);
        if data_len > u32::MAX as usize {
            return Err(AgentError::TooLarge {
                what: "tensor data",
                len: data_len,
            });
        }
        Ok(8 + 8 * self.dims.len() + self.name.len() + data_len)
    }

    /// Appends the encoded tensor; call [`TensorRef::encoded_len`] first.
    #[inline]
    pub(crate) fn write(&self, sink: &mut Vec<u8>) {
        tensor::write_tensor(sink, self.name, self.dtype(), self.dims, &self.data_bytes());
    }
}

/// The elements of an f32 tensor, or `None` if it holds another dtype.
pub fn f32_values<'a>(view: &TensorView<'a>) -> Option<impl Iterator<Item = f32> + 'a> {
    if view.dtype != tensor::DTYPE_F32 {
        return None;
    }
    Some(
        view.data
            .chunks_exact(4)
            .map(|c| <[u8; 4]>::try_from(c).map_or(0.0, f32::from_le_bytes)),
    )
}

/// The elements of an i64 tensor, or `None` if it holds another dtype.
pub fn i64_values<'a>(view: &TensorView<'a>) -> Option<impl Iterator<Item = i64> + 'a> {
    if view.dtype != tensor::DTYPE_I64 {
        return None;
    }
    Some(
        view.data
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).map_or(0, i64::from_le_bytes)),
    )
}

/// Index of the largest element, the lowest index on a tie; `None` when empty.
///
/// Written as the plain scan `if v > best { best = v }` from index 0, so a NaN
/// never replaces the current best (and a NaN first element is never replaced):
/// the host computes the workload digest's `argmax` the same way.
pub fn argmax(values: impl IntoIterator<Item = f32>) -> Option<usize> {
    let mut it = values.into_iter().enumerate();
    let (mut best_index, mut best) = it.next()?;
    for (i, v) in it {
        if v > best {
            best_index = i;
            best = v;
        }
    }
    Some(best_index)
}
