//! # The archives a build reads: tar, plain or compressed
//!
//! Two things in a build may be a compressed tar: the *context* (`docker build - <
//! ctx.tar.xz`) and an `ADD` source from the context (`ADD rootfs.tar.bz2 /`), which is
//! unpacked instead of copied. Docker recognises four compressions by their first bytes
//! (moby's `archive.DetectCompression`), never by the file's name:
//!
//! | magic bytes            | compression | shell            |
//! |------------------------|-------------|------------------|
//! | `1f 8b`                | gzip        | `gzip -dc`       |
//! | `42 5a 68` (`BZh`)     | bzip2       | `bzip2 -dc`      |
//! | `fd 37 7a 58 5a 00`    | xz          | `xz -dc`         |
//! | `28 b5 2f fd`          | zstd        | `zstd -dc`       |
//!
//! and then takes the result for a tar when a tar header can be read from it (the `ustar`
//! magic at byte 257). A compressed file that is not a tar, `ADD notes.txt.gz /`, is
//! copied as it is, as docker copies it.
//!
//! The decoders only ever write to memory or to a scratch file of the build, so a hostile
//! archive can at worst fill the build's disk or make the tar reader fail; the tar reader
//! that unpacks it (lab 04's `apply_layer`) keeps every entry inside the destination.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};

/// A compression docker's builder recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Recognises the magic number at the start of `head`.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

// ANCHOR: decompress
/// `input`, decompressed as its first bytes say. gzip, bzip2 and zstd stream; xz is
/// decoded whole into a scratch file in `scratch` (lzma-rs has no streaming xz reader),
/// whose name is removed once it is written: the open descriptor keeps its data until
/// the reader is dropped.
pub fn decompress<'a, R: BufRead + 'a>(
    mut input: R,
    scratch: &Path,
) -> Result<(Box<dyn Read + 'a>, Compression)> {
    let c = Compression::detect(
        input
            .fill_buf()
            .context("reading the archive's first bytes")?,
    );
    let reader: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd_decoder(input).context("starting the zstd decoder")?),
        Compression::Xz => {
            let mut out = tempfile_in(scratch)?;
            lzma_rs::xz_decompress(&mut input, &mut out.0)
                .map_err(|e| anyhow::anyhow!("decompressing xz: {e}"))?;
            Box::new(out.reopen()?)
        }
    };
    Ok((reader, c))
}
// ANCHOR_END: decompress

/// zstd through lab 04's decoder (libzstd, as for zstd layers).
fn zstd_decoder<'a, R: BufRead + 'a>(input: R) -> Result<Box<dyn Read + 'a>> {
    let (r, _) = lab04_overlay::extract::decompressor(input)?;
    Ok(r)
}

/// A scratch file, unlinked at once: its data lives as long as an open descriptor does.
struct Scratch(File, std::path::PathBuf);

fn tempfile_in(dir: &Path) -> Result<Scratch> {
    let path = dir.join(format!(
        "xz-{}-{}",
        std::process::id(),
        crate::runstep::random_id()?.get(..12).unwrap_or("0")
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(Scratch(f, path))
}

impl Scratch {
    /// The written file, rewound for reading; its name is gone from the directory.
    fn reopen(mut self) -> Result<File> {
        use std::io::Seek;
        self.0.rewind()?;
        let _ = std::fs::remove_file(&self.1);
        Ok(self.0)
    }
}

/// Whether the first 512 bytes of a (decompressed) stream are a tar header.
pub fn is_tar_header(head: &[u8]) -> bool {
    head.len() > 262 && &head[257..262] == b"ustar"
}

// ANCHOR: open_tar
/// The file at `path` as a tar stream, decompressed, if it is a tar (compressed or not):
/// what `ADD` unpacks. `None`: copy the file as it is.
pub fn open_tar(path: &Path, scratch: &Path) -> Result<Option<Box<dyn Read>>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut r, _) = decompress(BufReader::new(f), scratch)?;
    // A look at the first 512 decompressed bytes, which the stream then starts with again.
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    head.truncate(got);
    if !is_tar_header(&head) {
        return Ok(None);
    }
    Ok(Some(Box::new(std::io::Cursor::new(head).chain(r))))
}
// ANCHOR_END: open_tar

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    fn read_back(path: &Path, scratch: &Path) -> Option<Vec<(String, Vec<u8>)>> {
        let r = open_tar(path, scratch).unwrap()?;
        let mut a = tar::Archive::new(r);
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            out.push((e.path().unwrap().display().to_string(), body));
        }
        Some(out)
    }

    #[test]
    fn every_compression_docker_knows_is_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of("hello.txt", b"hello\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
        for (name, bytes, c) in [
            ("plain", tar.clone(), Compression::None),
            ("gz", gz.finish().unwrap(), Compression::Gzip),
            ("bz2", bz.finish().unwrap(), Compression::Bzip2),
            ("xz", xz, Compression::Xz),
        ] {
            assert_eq!(Compression::detect(&bytes), c, "{name}");
            let p = dir.path().join(name);
            fs_write(&p, &bytes);
            assert_eq!(
                read_back(&p, dir.path()).unwrap(),
                [("hello.txt".to_string(), b"hello\n".to_vec())],
                "{name}"
            );
        }
        // Only the archives themselves are left: the xz scratch file is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn a_compressed_file_that_is_not_a_tar_is_not_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &b"just text\n"[..], &mut xz).unwrap();
        let p = dir.path().join("notes.xz");
        fs_write(&p, &xz);
        assert!(read_back(&p, dir.path()).is_none());
        let p = dir.path().join("plain.txt");
        fs_write(&p, b"not a tar");
        assert!(read_back(&p, dir.path()).is_none());
    }

    fn fs_write(p: &Path, b: &[u8]) {
        std::fs::write(p, b).unwrap();
    }
}
