//! Recognises common file types by their leading bytes, to catch content whose declared type is
//! a disguise: an executable or an HTML page uploaded as `image/png`, say.

use crate::domain::values::MediaType;

/// How many leading bytes the checks look at.
pub const SNIFF_LEN: usize = 4096;

/// A family of formats that share a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Bmp,
    Tiff,
    Ico,
    Pdf,
    /// ZIP and the formats built on it: OOXML/ODF documents, JAR, APK, EPUB.
    Zip,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    SevenZip,
    Rar,
    Tar,
    Mp3,
    /// ISO base media: MP4, MOV, M4A, 3GP, HEIC/AVIF.
    IsoMedia,
    Matroska,
    Ogg,
    Wav,
    Avi,
    Flac,
    Wasm,
    /// ELF, PE (MZ), Mach-O and Java classes: programs.
    Executable,
    /// A `#!` script.
    Script,
    Html,
}

impl Kind {
    /// Formats whose bytes a browser or an OS would run, whatever type they were declared as.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Kind::Executable | Kind::Script | Kind::Html | Kind::Wasm
        )
    }
}

/// Bytes expected at an offset.
type Mark = (usize, &'static [u8]);

/// Signatures: every mark of an entry must be present for its kind.
const SIGNATURES: &[(&[Mark], Kind)] = &[
    (&[(0, b"\x89PNG\r\n\x1a\n")], Kind::Png),
    (&[(0, b"\xff\xd8\xff")], Kind::Jpeg),
    (&[(0, b"GIF87a")], Kind::Gif),
    (&[(0, b"GIF89a")], Kind::Gif),
    (&[(0, b"RIFF"), (8, b"WEBP")], Kind::Webp),
    (&[(0, b"RIFF"), (8, b"WAVE")], Kind::Wav),
    (&[(0, b"RIFF"), (8, b"AVI ")], Kind::Avi),
    (&[(0, b"BM"), (6, b"\0\0\0\0")], Kind::Bmp),
    (&[(0, b"II*\0")], Kind::Tiff),
    (&[(0, b"MM\0*")], Kind::Tiff),
    (&[(0, b"\0\0\x01\0")], Kind::Ico),
    (&[(0, b"%PDF-")], Kind::Pdf),
    (&[(0, b"PK\x03\x04")], Kind::Zip),
    (&[(0, b"PK\x05\x06")], Kind::Zip),
    (&[(0, b"PK\x07\x08")], Kind::Zip),
    (&[(0, b"\x1f\x8b")], Kind::Gzip),
    (&[(0, b"BZh")], Kind::Bzip2),
    (&[(0, b"\xfd7zXZ\0")], Kind::Xz),
    (&[(0, b"\x28\xb5\x2f\xfd")], Kind::Zstd),
    (&[(0, b"7z\xbc\xaf\x27\x1c")], Kind::SevenZip),
    (&[(0, b"Rar!\x1a\x07")], Kind::Rar),
    (&[(257, b"ustar")], Kind::Tar),
    (&[(0, b"ID3")], Kind::Mp3),
    (&[(4, b"ftyp")], Kind::IsoMedia),
    (&[(0, b"\x1a\x45\xdf\xa3")], Kind::Matroska),
    (&[(0, b"OggS")], Kind::Ogg),
    (&[(0, b"fLaC")], Kind::Flac),
    (&[(0, b"\0asm")], Kind::Wasm),
    (&[(0, b"\x7fELF")], Kind::Executable),
    (&[(0, b"MZ")], Kind::Executable),
    (&[(0, b"\xfe\xed\xfa\xce")], Kind::Executable),
    (&[(0, b"\xfe\xed\xfa\xcf")], Kind::Executable),
    (&[(0, b"\xce\xfa\xed\xfe")], Kind::Executable),
    (&[(0, b"\xcf\xfa\xed\xfe")], Kind::Executable),
    (&[(0, b"\xca\xfe\xba\xbe")], Kind::Executable),
    (&[(0, b"#!")], Kind::Script),
];

/// The family of `bytes`' format, when its leading bytes say so.
pub fn detect(bytes: &[u8]) -> Option<Kind> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    SIGNATURES
        .iter()
        .find(|(marks, _)| marks.iter().all(|&(offset, magic)| at(offset, magic)))
        .map(|&(_, kind)| kind)
        .or_else(|| is_mpeg_audio_frame(bytes).then_some(Kind::Mp3))
        .or_else(|| looks_like_html(bytes).then_some(Kind::Html))
}

/// An MPEG audio frame header without an ID3 tag: 11 sync bits, a valid layer.
fn is_mpeg_audio_frame(bytes: &[u8]) -> bool {
    matches!(bytes, [0xff, second, ..] if second & 0xe0 == 0xe0 && second & 0x06 != 0)
}

/// The families a declared media type allows; `None` for types this module has no opinion on.
pub fn expected_kinds(content_type: &MediaType) -> Option<&'static [Kind]> {
    let kinds: &'static [Kind] = match content_type.essence() {
        "image/png" | "image/apng" => &[Kind::Png],
        "image/jpeg" | "image/jpg" | "image/pjpeg" => &[Kind::Jpeg],
        "image/gif" => &[Kind::Gif],
        "image/webp" => &[Kind::Webp],
        "image/bmp" | "image/x-ms-bmp" => &[Kind::Bmp],
        "image/tiff" => &[Kind::Tiff],
        "image/x-icon" | "image/vnd.microsoft.icon" => &[Kind::Ico],
        "image/heic" | "image/heif" | "image/avif" => &[Kind::IsoMedia],
        "application/pdf" => &[Kind::Pdf],
        "application/zip"
        | "application/x-zip-compressed"
        | "application/java-archive"
        | "application/epub+zip"
        | "application/vnd.android.package-archive" => &[Kind::Zip],
        t if t.starts_with("application/vnd.openxmlformats-officedocument.")
            || t.starts_with("application/vnd.oasis.opendocument.") =>
        {
            &[Kind::Zip]
        }
        "application/gzip" | "application/x-gzip" => &[Kind::Gzip],
        "application/x-bzip2" => &[Kind::Bzip2],
        "application/x-xz" => &[Kind::Xz],
        "application/zstd" => &[Kind::Zstd],
        "application/x-7z-compressed" => &[Kind::SevenZip],
        "application/vnd.rar" | "application/x-rar-compressed" => &[Kind::Rar],
        "application/x-tar" => &[Kind::Tar],
        "audio/mpeg" | "audio/mp3" => &[Kind::Mp3],
        "video/mp4" | "audio/mp4" | "video/quicktime" | "audio/x-m4a" | "video/3gpp" => {
            &[Kind::IsoMedia]
        }
        "video/webm" | "audio/webm" | "video/x-matroska" => &[Kind::Matroska],
        "audio/ogg" | "video/ogg" | "application/ogg" => &[Kind::Ogg],
        "audio/wav" | "audio/x-wav" | "audio/wave" => &[Kind::Wav],
        "video/x-msvideo" => &[Kind::Avi],
        "audio/flac" | "audio/x-flac" => &[Kind::Flac],
        "application/wasm" => &[Kind::Wasm],
        "text/html" | "application/xhtml+xml" => &[Kind::Html],
        _ => return None,
    };
    Some(kinds)
}

/// Whether `leading` bytes are consistent with the declared `content_type`: a type this module
/// knows must show its signature; any other type (but `application/octet-stream`, which claims
/// nothing) must not be a program, a script or an HTML page in disguise.
pub fn agrees(content_type: &MediaType, leading: &[u8]) -> bool {
    let detected = detect(leading);
    match expected_kinds(content_type) {
        Some(expected) => detected.is_some_and(|kind| expected.contains(&kind)),
        None if is_unspecific(content_type) => true,
        None => !detected.is_some_and(Kind::is_active) || declares_active(content_type),
    }
}

fn is_unspecific(content_type: &MediaType) -> bool {
    content_type.essence() == MediaType::DEFAULT
}

/// Types under which programs, scripts or markup are what one expects.
fn declares_active(content_type: &MediaType) -> bool {
    matches!(
        content_type.essence(),
        "application/x-executable"
            | "application/x-elf"
            | "application/x-sharedlib"
            | "application/x-msdownload"
            | "application/vnd.microsoft.portable-executable"
            | "application/x-dosexec"
            | "application/x-mach-binary"
            | "application/java-vm"
            | "application/x-sh"
            | "application/x-shellscript"
            | "text/x-shellscript"
            | "text/x-python"
            | "text/x-script.python"
            | "application/x-perl"
            | "image/svg+xml"
            | "application/xml"
            | "text/xml"
    )
}

fn looks_like_html(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let head = &text[start..text.len().min(start + 16)];
    [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<svg",
    ]
    .iter()
    .any(|tag| head.len() >= tag.len() && head[..tag.len()].eq_ignore_ascii_case(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(content_type: &str, leading: &[u8]) -> bool {
        super::agrees(&MediaType::parse(content_type).unwrap(), leading)
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0";
    const PE: &[u8] = b"MZ\x90\0\x03\0\0\0";
    const HTML: &[u8] = b"  \n<!DOCTYPE html><html><script>alert(1)</script>";

    #[test]
    fn signatures_are_recognised() {
        assert_eq!(detect(PNG), Some(Kind::Png));
        assert_eq!(detect(b"%PDF-1.7\n"), Some(Kind::Pdf));
        assert_eq!(detect(b"PK\x03\x04\x14\0"), Some(Kind::Zip));
        assert_eq!(detect(b"\0\0\0\x20ftypisom"), Some(Kind::IsoMedia));
        assert_eq!(detect(ELF), Some(Kind::Executable));
        assert_eq!(detect(PE), Some(Kind::Executable));
        assert_eq!(detect(HTML), Some(Kind::Html));
        assert_eq!(detect(b"<svg onload=alert(1)>"), Some(Kind::Html));
        assert_eq!(detect(b"hello, plain text"), None);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar), Some(Kind::Tar));
    }

    #[test]
    fn a_known_type_must_show_its_signature() {
        assert!(agrees("image/png", PNG));
        assert!(!agrees("image/png", ELF));
        assert!(!agrees("image/png", HTML));
        assert!(!agrees("image/png", b"plain text"));
        assert!(agrees(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            b"PK\x03\x04"
        ));
        assert!(agrees("text/html; charset=utf-8", HTML));
    }

    #[test]
    fn other_types_must_not_hide_programs_or_pages() {
        assert!(agrees("text/plain", b"just words"));
        assert!(agrees("text/csv", b"a,b\n1,2\n"));
        assert!(!agrees("text/plain", ELF));
        assert!(!agrees("application/json", HTML));
        assert!(!agrees("text/plain", b"#!/bin/sh\nrm -rf /"));
        assert!(agrees("application/x-sh", b"#!/bin/sh\necho"));
        assert!(agrees("application/x-msdownload", PE));
        assert!(agrees(
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"
        ));
    }

    #[test]
    fn octet_stream_claims_nothing() {
        for bytes in [PNG, ELF, HTML, b"anything".as_slice()] {
            assert!(agrees("application/octet-stream", bytes));
        }
    }
}
