//! NumPy `.npy` and `.npz` files: the tensors of `dicesim infer`.
//!
//! Reads little-endian `f4`, `f8` (as f32), `i8` and `i4` (as i64), C order; writes `f4`
//! and `i8`. `.npz` archives are zip files of `.npy` members, stored or deflated on read,
//! stored on write (as `numpy.savez`).

use anyhow::{anyhow, bail, Context, Result};
use dicesim_backend_loader::{Tensor, TensorData};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The header text of a `.npy` image and where its data starts.
fn split_header<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a str, usize)> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("{what}: not a NumPy .npy file (bad magic)");
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                bail!("{what}: truncated .npy header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!("{what}: unsupported .npy format version {v}"),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| anyhow!("{what}: truncated .npy header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| anyhow!("{what}: .npy header is not text"))?;
    Ok((header, start + hlen))
}

/// The element type (`descr`) and shape of a C-order `.npy` header.
fn parse_header<'a>(header: &'a str, what: &str) -> Result<(&'a str, Vec<usize>)> {
    let field = |key: &str| -> Result<&str> {
        let k = format!("'{key}':");
        let i = header
            .find(&k)
            .ok_or_else(|| anyhow!("{what}: .npy header has no '{key}'"))?;
        Ok(header[i + k.len()..].trim_start())
    };
    let descr = field("descr")?
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| anyhow!("{what}: bad 'descr' in .npy header"))?;
    if field("fortran_order")?.starts_with("True") {
        bail!("{what}: Fortran-order arrays are not supported; save with numpy.ascontiguousarray");
    }
    let shape_s = field("shape")?
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| anyhow!("{what}: bad 'shape' in .npy header"))?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("{what}: bad 'shape' ({shape_s}) in .npy header"))?;
    Ok((descr, shape))
}

/// Little-endian elements of `size` bytes each, converted by `f`.
fn decode<T>(data: &[u8], size: usize, f: impl Fn(&[u8]) -> T) -> Vec<T> {
    data.chunks_exact(size).map(f).collect()
}

/// Parses one `.npy` image; `what` names it in errors.
pub fn parse_npy(bytes: &[u8], what: &str) -> Result<Tensor> {
    let (header, start) = split_header(bytes, what)?;
    let (descr, shape) = parse_header(header, what)?;
    let n = (shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))).ok_or_else(|| {
        anyhow!("{what}: shape {shape:?} has more elements than this machine can address")
    })?;
    let body = &bytes[start..];
    let need = |size: usize| -> Result<&[u8]> {
        let bytes = n.saturating_mul(size);
        body.get(..bytes).ok_or_else(|| {
            anyhow!(
                "{what}: data is {} bytes, shape {shape:?} of {descr} needs {bytes}",
                body.len(),
            )
        })
    };
    let data = match descr {
        "<f4" | "|f4" => TensorData::F32(decode(need(4)?, 4, |c| {
            f32::from_le_bytes(c.try_into().expect("4"))
        })),
        "<f8" => TensorData::F32(decode(need(8)?, 8, |c| {
            f64::from_le_bytes(c.try_into().expect("8")) as f32
        })),
        "<i8" => TensorData::I64(decode(need(8)?, 8, |c| {
            i64::from_le_bytes(c.try_into().expect("8"))
        })),
        "<i4" => TensorData::I64(decode(need(4)?, 4, |c| {
            i32::from_le_bytes(c.try_into().expect("4")) as i64
        })),
        d => bail!(
            "{what}: element type '{d}' is not supported (use float32, float64, int32 or int64)"
        ),
    };
    Ok(Tensor { shape, data })
}

/// Encodes a tensor as a version-1 `.npy` image.
pub fn encode_npy(t: &Tensor) -> Vec<u8> {
    let descr = match t.data {
        TensorData::F32(_) => "<f4",
        TensorData::I64(_) => "<i8",
    };
    let shape = match t.shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape[0]),
        _ => format!(
            "({})",
            t.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so the data starts at a multiple of 64 bytes, ending in a newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.shape.iter().product::<usize>() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &t.data {
        TensorData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}

/// The largest `.npz` member read [bytes]: 4 GiB, beyond any input tensor of a CNN.
const MAX_MEMBER_BYTES: u64 = 4 << 30;

/// Reads named tensors from a `.npy` (one tensor, named by `single_name`) or a `.npz`.
pub fn read_tensors(path: &Path, single_name: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let what = path.display().to_string();
    if bytes.starts_with(MAGIC) {
        let name = single_name.ok_or_else(|| {
            anyhow!("{what}: a .npy holds one tensor, but the model has several inputs; give a .npz with one array per input name")
        })?;
        return Ok(vec![(name.to_string(), parse_npy(&bytes, &what)?)]);
    }
    read_npz(bytes, &what, MAX_MEMBER_BYTES)
}

/// The tensors of a `.npz` image, each member read up to `limit` bytes.
fn read_npz(bytes: Vec<u8>, what: &str, limit: u64) -> Result<Vec<(String, Tensor)>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| anyhow!("{what}: neither a .npy nor a .npz file ({e})"))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| anyhow!("{what}: bad .npz member {i}: {e}"))?;
        let name = f
            .name()
            .map_err(|e| anyhow!("{what}: bad .npz member name: {e}"))?
            .to_string();
        let mut buf = Vec::new();
        // a small compressed member may inflate without bound: read at most the limit
        (&mut f)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| anyhow!("{what}: reading .npz member '{name}': {e}"))?;
        if buf.len() as u64 > limit {
            bail!(
                "{what}: .npz member '{name}' inflates to more than {} MiB (the limit of one tensor)",
                limit >> 20
            );
        }
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.push((key, parse_npy(&buf, &format!("{what}[{name}]"))?));
    }
    Ok(out)
}

/// Writes named tensors as an uncompressed `.npz` (as `numpy.savez`).
pub fn write_npz(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, t) in tensors {
        zip.start_file(format!("{name}.npy"), opts)
            .with_context(|| format!("writing {}", path.display()))?;
        zip.write_all(&encode_npy(t))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    zip.finish()
        .with_context(|| format!("writing {}", path.display()))?
        .flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let t = Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let b = encode_npy(&t);
        assert_eq!(b.len() % 64, 24); // header padded to 64 bytes, then 24 data bytes
        assert_eq!(parse_npy(&b, "x").unwrap(), t);
        let s = Tensor {
            shape: vec![],
            data: TensorData::I64(vec![7]),
        };
        assert_eq!(parse_npy(&encode_npy(&s), "s").unwrap(), s);
    }

    #[test]
    fn npz_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        let ts = vec![
            ("x".to_string(), Tensor::f32(vec![4], vec![0.5; 4])),
            ("y/z".to_string(), Tensor::f32(vec![1, 1], vec![2.0])),
        ];
        write_npz(&p, &ts).unwrap();
        assert_eq!(read_tensors(&p, None).unwrap(), ts);
        let bad = dir.path().join("bad.npy");
        std::fs::write(&bad, b"hello").unwrap();
        assert!(read_tensors(&bad, Some("x")).is_err());
        let mut b = encode_npy(&Tensor::f32(vec![8], vec![1.0; 8]));
        b.truncate(b.len() - 4);
        assert!(parse_npy(&b, "t")
            .unwrap_err()
            .to_string()
            .contains("needs 32"));
    }

    #[test]
    fn a_member_that_inflates_past_the_limit_is_refused() {
        // 64 KiB of zeros deflate to a few hundred bytes: read with a 1 KiB limit
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("x.npy", opts).unwrap();
        zip.write_all(&vec![0u8; 64 << 10]).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(bytes.len() < 4096);
        let e = read_npz(bytes, "b.npz", 1024).unwrap_err().to_string();
        assert!(
            e.contains("b.npz: .npz member 'x.npy' inflates to more than"),
            "{e}"
        );
    }

    #[test]
    fn a_shape_past_the_address_space_is_an_error() {
        let header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        let e = parse_npy(&b, "t").unwrap_err().to_string();
        assert!(
            e.contains("more elements than this machine can address"),
            "{e}"
        );
    }
}
