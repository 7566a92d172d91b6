//! Checkpoint files: standard safetensors with string metadata, written atomically.
//!
//! A checkpoint is one `.safetensors` file holding named tensors (model weights,
//! optimizer state, …) and a string-to-string metadata map in the header's
//! `__metadata__` (step, RNG state, config hash, …). Python reads it with
//! `safetensors.numpy.load_file` / `safe_open(...).metadata()`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, View};

/// A tensor's little-endian bytes, as safetensors wants them.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_raw(name: &str, t: &Tensor) -> Result<Raw> {
    let t = t.to_device(&Device::Cpu)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (lo, hi) = layout.contiguous_offsets().context("contiguous tensor")?;
    macro_rules! le {
        ($v:expr) => {
            $v[lo..hi].iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    let (dtype, data) = match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => (Dtype::F32, le!(v)),
        Storage::Cpu(CpuStorage::F64(v)) => (Dtype::F64, le!(v)),
        Storage::Cpu(CpuStorage::F16(v)) => (Dtype::F16, le!(v)),
        Storage::Cpu(CpuStorage::BF16(v)) => (Dtype::BF16, le!(v)),
        Storage::Cpu(CpuStorage::I64(v)) => (Dtype::I64, le!(v)),
        Storage::Cpu(CpuStorage::I32(v)) => (Dtype::I32, le!(v)),
        Storage::Cpu(CpuStorage::I16(v)) => (Dtype::I16, le!(v)),
        Storage::Cpu(CpuStorage::U32(v)) => (Dtype::U32, le!(v)),
        Storage::Cpu(CpuStorage::U8(v)) => (Dtype::U8, v[lo..hi].to_vec()),
        _ => bail!("tensor `{name}` has unsupported dtype {:?}", t.dtype()),
    };
    Ok(Raw { dtype, shape: t.dims().to_vec(), data })
}

fn from_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::U32 => DType::U32,
        Dtype::U8 => DType::U8,
        _ => return None,
    })
}

/// The safetensors bytes for `tensors` and `metadata`.
fn serialize(tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut names = HashSet::new();
    let mut raws = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        ensure!(name != "__metadata__", "`__metadata__` is reserved and cannot name a tensor");
        ensure!(names.insert(name.as_str()), "duplicate tensor name `{name}`");
        raws.push((name.as_str(), to_raw(name, t)?));
    }
    let meta = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    Ok(safetensors::serialize(raws.iter().map(|(n, r)| (*n, r)), &meta)?)
}

/// The temporary file that [`save_atomic`] writes before renaming it over `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().context("checkpoint path has no file name")?;
    let tmp = format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes `tensors` and `metadata` as a safetensors file at `path`, atomically.
///
/// The file is first written to `.<name>.tmp-<pid>` in the same directory, fsynced and
/// then renamed over `path` (and the directory fsynced), so a reader or a crash sees
/// either the previous file or the complete new one. On failure the temporary file is
/// removed and any previous `path` is left as it was. Tensors may live on any device and
/// be f32, f64, f16, bf16, i64, i32, i16, u32 or u8; names must be unique. Concurrent saves
/// to the same `path` from one process are not supported.
pub fn save_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let ctx = || format!("cannot save checkpoint {}", path.display());
    let bytes = serialize(tensors, metadata).with_context(ctx)?;
    let tmp = temp_path(path).with_context(ctx)?;
    let written = write_synced(&tmp, &bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| fs::rename(&tmp, path).context("cannot rename the temporary file"));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(ctx)?;
    #[cfg(unix)]
    {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir).and_then(|d| d.sync_all()).with_context(ctx)?;
    }
    Ok(())
}

/// Reads a safetensors file into CPU tensors (in their stored dtype) and its metadata.
///
/// Reads any standard safetensors file with dtypes f32, f64, f16, bf16, i64, i32, i16,
/// u32 or u8; a file without metadata gives an empty map. Errors name the file.
pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, BTreeMap<String, String>)> {
    let ctx = || format!("cannot load checkpoint {}", path.display());
    let bytes = fs::read(path).with_context(ctx)?;
    let st = SafeTensors::deserialize(&bytes).with_context(ctx)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).with_context(ctx)?;
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let mut tensors = HashMap::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let Some(dtype) = from_dtype(view.dtype()) else {
            bail!("{}: tensor `{name}` has unsupported dtype {:?}", ctx(), view.dtype());
        };
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
            .with_context(|| format!("{}: bad tensor `{name}`", ctx()))?;
        tensors.insert(name, t);
    }
    Ok((tensors, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tinylab-ckpt-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sample() -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1.5f32, -2.0, 3.25], [0.0, 1e-8, -7.0]], &dev).unwrap();
        let tensors = vec![
            ("blocks.0.attn.W_Q".to_string(), w.t().unwrap()), // non-contiguous
            ("adamw.step.w".to_string(), Tensor::new(42i64, &dev).unwrap()),
            ("tokens".to_string(), Tensor::new(&[7u32, 0, u32::MAX], &dev).unwrap()),
            ("x64".to_string(), Tensor::new(&[0.1f64, -0.2], &dev).unwrap()),
        ];
        let meta = [("step", "42"), ("rng", "[1, 2, 3]")];
        (tensors, meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn files(dir: &Path) -> Vec<String> {
        let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
        let mut names: Vec<_> = names.collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip_with_metadata_and_no_temp_left() {
        let dir = scratch("roundtrip");
        let path = dir.join("ckpt.safetensors");
        let (tensors, meta) = sample();
        save_atomic(&path, &tensors, &meta).unwrap();
        save_atomic(&path, &tensors, &meta).unwrap(); // overwrite
        assert_eq!(files(&dir), ["ckpt.safetensors"]);
        let (loaded, meta2) = load(&path).unwrap();
        assert_eq!(meta2, meta);
        assert_eq!(loaded.len(), tensors.len());
        for (name, t) in &tensors {
            let l = &loaded[name];
            assert_eq!((l.dtype(), l.dims()), (t.dtype(), t.dims()), "{name}");
            let (a, b) = (t.flatten_all().unwrap(), l.flatten_all().unwrap());
            assert_eq!(
                a.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                b.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap(),
                "{name}"
            );
        }
        assert_eq!(loaded["adamw.step.w"].to_scalar::<i64>().unwrap(), 42);
        assert_eq!(loaded["tokens"].to_vec1::<u32>().unwrap()[2], u32::MAX);
        // No metadata is fine too.
        save_atomic(&path, &tensors[..1], &BTreeMap::new()).unwrap();
        assert!(load(&path).unwrap().1.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = scratch("failed");
        let path = dir.join("ckpt.safetensors");
        let (tensors, meta) = sample();
        save_atomic(&path, &tensors, &meta).unwrap();
        // Squat the temp path with a directory so the write itself fails.
        fs::create_dir(temp_path(&path).unwrap()).unwrap();
        let new_meta = BTreeMap::from([("step".to_string(), "43".to_string())]);
        let err = save_atomic(&path, &tensors[1..], &new_meta).unwrap_err();
        assert!(format!("{err:#}").contains("ckpt.safetensors"), "{err:#}");
        let (loaded, m) = load(&path).unwrap();
        assert_eq!((loaded.len(), m["step"].as_str()), (4, "42"));
        fs::remove_dir(temp_path(&path).unwrap()).unwrap();
        // A serialization failure (duplicate name) happens before any file is touched.
        let dup = vec![tensors[0].clone(), tensors[0].clone()];
        assert!(format!("{:#}", save_atomic(&path, &dup, &meta).unwrap_err()).contains("duplicate"));
        assert_eq!(files(&dir), ["ckpt.safetensors"]);
        assert_eq!(load(&path).unwrap().0.len(), 4);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = scratch("errors");
        let missing = dir.join("nope.safetensors");
        assert!(format!("{:#}", load(&missing).unwrap_err()).contains("nope.safetensors"));
        let junk = dir.join("junk.safetensors");
        fs::write(&junk, b"not a safetensors file").unwrap();
        assert!(format!("{:#}", load(&junk).unwrap_err()).contains("junk.safetensors"));
        let no_dir = dir.join("sub").join("x.safetensors");
        let err = save_atomic(&no_dir, &sample().0, &BTreeMap::new()).unwrap_err();
        assert!(format!("{err:#}").contains("x.safetensors"), "{err:#}");
        fs::remove_dir_all(dir).unwrap();
    }
}
