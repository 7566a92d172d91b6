//! candle [`Tensor`] ↔ `ndarray` conversions.
//!
//! Analysis runs in `f64` on the CPU whatever the model's dtype and device: every tensor is cast
//! (`f32`, `f16`, `bf16`, `f64`, or an integer type) to `f64` and copied to host memory. Going
//! back, the caller picks the dtype and device. Element `[i, j]` of the array is element
//! `[i, j]` of the tensor (row-major, no transposition anywhere).
#![warn(missing_docs)]

use candle_core::{DType, Device, Tensor};
use ndarray::{Array1, Array2};

use crate::error::{ProbeError, Result};

fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// A rank-2 tensor `[r, c]` as an `Array2<f64>` `[r, c]`.
///
/// Errors with [`ProbeError::Shape`] on any other rank.
pub fn tensor_to_array2(t: &Tensor) -> Result<Array2<f64>> {
    let &[r, c] = t.dims() else {
        return Err(ProbeError::Shape(format!("expected a rank-2 tensor, got shape {:?}", t.dims())));
    };
    let v = host_f64(t)?;
    Ok(Array2::from_shape_vec((r, c), v).expect("element count matches the shape"))
}

/// Slice `index` of a rank-3 tensor `[n, r, c]` along its first axis, as `Array2<f64>` `[r, c]`
/// (e.g. one head of `W_Q` `[H, d_model, d_head]`).
///
/// Errors with [`ProbeError::Shape`] on another rank and [`ProbeError::InvalidArgument`] when
/// `index ≥ n`.
pub fn tensor_slice_to_array2(t: &Tensor, index: usize) -> Result<Array2<f64>> {
    let &[n, _, _] = t.dims() else {
        return Err(ProbeError::Shape(format!("expected a rank-3 tensor, got shape {:?}", t.dims())));
    };
    if index >= n {
        return Err(ProbeError::InvalidArgument(format!("slice {index} of a tensor with {n} slices")));
    }
    tensor_to_array2(&t.get(index)?)
}

/// A rank-1 tensor `[n]` as an `Array1<f64>` (e.g. a LayerNorm gain).
pub fn tensor_to_array1(t: &Tensor) -> Result<Array1<f64>> {
    if t.rank() != 1 {
        return Err(ProbeError::Shape(format!("expected a rank-1 tensor, got shape {:?}", t.dims())));
    }
    Ok(Array1::from_vec(host_f64(t)?))
}

/// An `Array2<f64>` `[r, c]` as a tensor `[r, c]` of `dtype` on `device`.
pub fn array2_to_tensor(a: &Array2<f64>, device: &Device, dtype: DType) -> Result<Tensor> {
    let v: Vec<f64> = a.iter().copied().collect(); // logical (row-major) order for any layout
    Ok(Tensor::from_vec(v, a.dim(), device)?.to_dtype(dtype)?)
}

/// An `Array1<f64>` `[n]` as a tensor `[n]` of `dtype` on `device`.
pub fn array1_to_tensor(a: &Array1<f64>, device: &Device, dtype: DType) -> Result<Tensor> {
    let v: Vec<f64> = a.iter().copied().collect();
    Ok(Tensor::from_vec(v, a.len(), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trips_keep_element_positions() {
        let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]];
        for dtype in [DType::F32, DType::F64] {
            let t = array2_to_tensor(&a, &Device::Cpu, dtype).unwrap();
            assert_eq!(t.dims(), &[2, 3]);
            assert_eq!(t.dtype(), dtype);
            assert_eq!(tensor_to_array2(&t).unwrap(), a);
        }
        // A transposed (non-standard layout) array converts by logical index.
        let t = array2_to_tensor(&a.t().to_owned(), &Device::Cpu, DType::F64).unwrap();
        assert_eq!(tensor_to_array2(&t).unwrap(), a.t());
        let t = array2_to_tensor(&a.view().reversed_axes().to_owned(), &Device::Cpu, DType::F32).unwrap();
        assert_eq!(tensor_to_array2(&t.t().unwrap()).unwrap(), a);
        let v = array![0.5, -1.0];
        assert_eq!(tensor_to_array1(&array1_to_tensor(&v, &Device::Cpu, DType::F32).unwrap()).unwrap(), v);
    }

    #[test]
    fn slices_of_rank3_tensors_and_rank_errors() {
        let t = Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((2, 2, 3)).unwrap();
        assert_eq!(tensor_slice_to_array2(&t, 1).unwrap(), array![[6.0, 7.0, 8.0], [9.0, 10.0, 11.0]]);
        assert!(matches!(tensor_slice_to_array2(&t, 2), Err(ProbeError::InvalidArgument(_))));
        assert!(matches!(tensor_to_array2(&t), Err(ProbeError::Shape(_))));
        assert!(matches!(tensor_to_array1(&t), Err(ProbeError::Shape(_))));
    }
}
