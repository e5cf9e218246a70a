//! Signs the part URLs of a multipart upload in bulk. The SDK's presigner runs its whole request
//! pipeline per URL (~80 µs); the URLs of one upload differ only in `partNumber`, the signed
//! `content-length` and, for an upload with part checksums, the signed `x-amz-checksum-sha256`,
//! so this signs one with the SDK, reuses its host, path, scope and date, derives the SigV4
//! signing key once, and signs each further part with one SHA-256 and one HMAC, as SigV4
//! requires and no more. The SDK's own URL for the first part checks the method: any
//! disagreement falls back to the SDK.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use super::presign::PartToSign;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const PART_NUMBER: &str = "partNumber";
const SIGNATURE: &str = "X-Amz-Signature";
const SIGNED_HEADERS_PARAM: &str = "X-Amz-SignedHeaders";
/// Each part's URL signs its exact length, so storage refuses a part of any other size…
const SIGNED_HEADERS: &str = "content-length;host";
/// …and, when the part's SHA-256 is given, that digest, so storage refuses any other bytes.
const SIGNED_HEADERS_WITH_SHA256: &str = "content-length;host;x-amz-checksum-sha256";
/// `X-Amz-SignedHeaders` as it appears, percent-encoded, in the query.
fn signed_headers_param(with_sha256: bool) -> &'static str {
    if with_sha256 {
        "content-length%3Bhost%3Bx-amz-checksum-sha256"
    } else {
        "content-length%3Bhost"
    }
}

/// A presigned UploadPart URL taken apart, ready to be signed again for other part numbers.
pub struct PartUrlSigner {
    /// `scheme://authority/path`, as in the SDK's URL.
    base: String,
    host: String,
    path: String,
    /// The query as the SDK wrote it, `partNumber` and `X-Amz-Signature` included.
    query: Vec<(String, String)>,
    amz_date: String,
    scope: String,
    signing_key: Vec<u8>,
}

impl PartUrlSigner {
    /// Takes apart `template`, the SDK's URL for the part `template_part` signed at `signed_at`,
    /// and checks that signing that part again yields the SDK's signature; `None` if anything is
    /// unexpected.
    pub fn from_template(
        template: &str,
        template_part: &PartToSign,
        secret_access_key: &str,
        signed_at: SystemTime,
    ) -> Option<Self> {
        let (base, query) = template.split_once('?')?;
        let (_, rest) = base.split_once("://")?;
        let (host, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let query: Vec<(String, String)> = query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let signed_headers = percent_decode_str(param("X-Amz-SignedHeaders")?)
            .decode_utf8()
            .ok()?;
        let expected = match template_part.sha256 {
            Some(_) => SIGNED_HEADERS_WITH_SHA256,
            None => SIGNED_HEADERS,
        };
        if param("X-Amz-Algorithm") != Some(ALGORITHM) || signed_headers != expected {
            return None;
        }
        let credential = percent_decode_str(param("X-Amz-Credential")?)
            .decode_utf8()
            .ok()?;
        // access-key/date/region/service/aws4_request: the scope is all after the key
        let scope = credential.split_once('/')?.1.to_owned();
        let mut scope_parts = scope.split('/');
        let (_date, region, service) = (
            scope_parts.next()?,
            scope_parts.next()?,
            scope_parts.next()?,
        );
        let signing_key = generate_signing_key(secret_access_key, signed_at, region, service)
            .as_ref()
            .to_vec();
        let signer = Self {
            base: base.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            amz_date: param("X-Amz-Date")?.to_owned(),
            query: query.clone(),
            scope,
            signing_key,
        };
        let part: u32 = param(PART_NUMBER)?.parse().ok()?;
        (part == template_part.number && signer.url(template_part) == template).then_some(signer)
    }

    /// The presigned PUT URL for `part`: its number, of exactly its length (and SHA-256).
    pub fn url(&self, part: &PartToSign) -> String {
        let number = part.number.to_string();
        let sha256 = part.sha256.map(|digest| digest.to_base64());
        let signed_headers = signed_headers_param(sha256.is_some());
        let value = |name: &str, value: &str| -> String {
            match name {
                PART_NUMBER => number.clone(),
                SIGNED_HEADERS_PARAM => signed_headers.to_owned(),
                _ => value.to_owned(),
            }
        };
        let mut canonical: Vec<(&str, String)> = self
            .query
            .iter()
            .filter(|(name, _)| name != SIGNATURE)
            .map(|(name, v)| (name.as_str(), value(name, v)))
            .collect();
        canonical.sort();
        let canonical_query = canonical
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let (length, host, path) = (part.length, &self.host, &self.path);
        let canonical_request = match &sha256 {
            Some(sha256) => format!(
                "PUT\n{path}\n{canonical_query}\ncontent-length:{length}\nhost:{host}\nx-amz-checksum-sha256:{sha256}\n\n{SIGNED_HEADERS_WITH_SHA256}\nUNSIGNED-PAYLOAD"
            ),
            None => format!(
                "PUT\n{path}\n{canonical_query}\ncontent-length:{length}\nhost:{host}\n\n{SIGNED_HEADERS}\nUNSIGNED-PAYLOAD"
            ),
        };
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let signature = calculate_signature(&self.signing_key, string_to_sign.as_bytes());
        let mut url =
            String::with_capacity(self.base.len() + 64 + canonical_query.len() + signature.len());
        url.push_str(&self.base);
        for (index, (name, v)) in self.query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            match name.as_str() {
                SIGNATURE => url.push_str(&signature),
                PART_NUMBER => url.push_str(&number),
                SIGNED_HEADERS_PARAM => url.push_str(signed_headers),
                _ => url.push_str(v),
            }
        }
        url
    }

    /// The URLs of `parts`, by part number.
    pub fn urls(&self, parts: &[PartToSign]) -> BTreeMap<u32, String> {
        parts
            .iter()
            .map(|part| (part.number, self.url(part)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::presigning::PresigningConfig;

    use super::*;
    use crate::domain::values::Sha256 as Sha256Digest;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn client(path_style: bool) -> aws_sdk_s3::Client {
        // An 800-character session token, as Lambda's role credentials carry.
        let token: String = "IQoJb3JpZ2luX2VjE".chars().cycle().take(800).collect();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new(
                "ASIAEXAMPLEKEYID",
                SECRET,
                Some(token),
                None,
                "test",
            ))
            .force_path_style(path_style)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Parts of 16 MiB; part 10,000 is shorter. With `sha256`, each carries a digest of its own.
    fn part(number: u32, sha256: bool) -> PartToSign {
        PartToSign {
            number,
            length: if number == 10_000 { 1234 } else { 16 << 20 },
            sha256: sha256
                .then(|| Sha256Digest::from_bytes(Sha256::digest(number.to_be_bytes()).into())),
        }
    }

    async fn sdk_url(client: &aws_sdk_s3::Client, part: &PartToSign, at: SystemTime) -> String {
        let presigning = PresigningConfig::builder()
            .start_time(at)
            .expires_in(Duration::from_secs(900))
            .build()
            .unwrap();
        client
            .upload_part()
            .bucket("uploads-bucket")
            .key(
                "uploads/3f8e2a8c-5d0b-4c1e-9a57-2b7c4d9e6f10/9b2d7c1e-4a3f-4e8b-8c6d-5f1a2b3c4d5e",
            )
            .upload_id("VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA--")
            .part_number(part.number as i32)
            .content_length(part.length as i64)
            .set_checksum_sha256(part.sha256.map(|digest| digest.to_base64()))
            .presigned(presigning)
            .await
            .unwrap()
            .uri()
            .to_owned()
    }

    #[tokio::test]
    async fn urls_are_byte_for_byte_the_sdks() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_297_950);
        for path_style in [false, true] {
            let client = client(path_style);
            for template_sha256 in [false, true] {
                let first = part(1, template_sha256);
                let template = sdk_url(&client, &first, at).await;
                let signer = PartUrlSigner::from_template(&template, &first, SECRET, at)
                    .expect("the template is understood");
                for number in [1, 2, 7, 99, 100, 9_999, 10_000] {
                    for sha256 in [false, true] {
                        let part = part(number, sha256);
                        assert_eq!(
                            signer.url(&part),
                            sdk_url(&client, &part, at).await,
                            "part {number}, sha256 {sha256}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn a_template_it_cannot_reproduce_is_refused() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_297_950);
        let first = part(1, false);
        let template = sdk_url(&client(false), &first, at).await;
        let longer = PartToSign {
            length: first.length + 1,
            ..first
        };
        assert!(PartUrlSigner::from_template(&template, &first, "another secret", at).is_none());
        assert!(PartUrlSigner::from_template(&template, &longer, SECRET, at).is_none());
        assert!(PartUrlSigner::from_template(&template, &part(1, true), SECRET, at).is_none());
        assert!(PartUrlSigner::from_template(&template, &part(2, false), SECRET, at).is_none());
        assert!(
            PartUrlSigner::from_template(
                &template.replace("partNumber=1", "partNumber=2"),
                &part(2, false),
                SECRET,
                at
            )
            .is_none()
        );
        assert!(PartUrlSigner::from_template("not a url", &first, SECRET, at).is_none());
    }
}
