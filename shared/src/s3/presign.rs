//! Presigned URLs: PUTs signed for the declared content, part URLs signed in bulk, downloads.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{AppName, IdentityCache, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use super::objects::{PENDING_TAGGING, PUT_CACHE_CONTROL};
use super::part_signer::PartUrlSigner;
use super::signing::{SigningIdentity, URL_SIGNER};
use crate::domain::ContentDeclaration;
use crate::domain::values::Sha256;
use crate::error::Failure;

/// A URL and the headers that were signed into it: the client must send exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working: its lifetime, or the signing credentials' if shorter.
    pub expires_at: OffsetDateTime,
}

/// One part of a multipart upload to sign a URL for: its number, its exact length and, for an
/// upload with part checksums, its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartToSign {
    pub number: u32,
    pub length: u64,
    pub sha256: Option<Sha256>,
}

impl PartToSign {
    /// The header that carries a part's SHA-256, signed into its URL.
    pub const SHA256_HEADER: &str = "x-amz-checksum-sha256";

    /// The headers signed into this part's URL beside the upload's own, which the client must
    /// send as they are.
    pub fn headers(&self) -> BTreeMap<String, String> {
        self.sha256
            .iter()
            .map(|digest| (Self::SHA256_HEADER.to_owned(), digest.to_base64()))
            .collect()
    }
}

/// Part URLs by part number, the headers each part must be sent with beside the upload's own
/// (empty without part checksums), and when the URLs stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartUrls {
    pub urls: BTreeMap<u32, String>,
    pub headers: BTreeMap<u32, BTreeMap<String, String>>,
    pub expires_at: OffsetDateTime,
}

/// Signs URLs for the objects of one bucket.
#[derive(Clone, Debug)]
pub struct Presigner {
    /// The S3 client, signing with `identity` where there is one.
    client: Client,
    bucket: String,
    /// The credentials the URLs are signed with, when known: they bound each URL's lifetime,
    /// and sign part URLs in bulk.
    identity: Option<SigningIdentity>,
}

impl Presigner {
    /// Signs with `credentials` (the S3 client's own when `None`, without bounding lifetimes
    /// or signing in bulk).
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        let identity = credentials.map(SigningIdentity::new);
        let client = match &identity {
            // The identity caches the credentials itself, choosing them by the URL's lifetime.
            Some(identity) => {
                let mut config = client
                    .config()
                    .to_builder()
                    .credentials_provider(identity.clone())
                    .identity_cache(IdentityCache::no_cache());
                config.set_app_name(AppName::new(URL_SIGNER).ok());
                Client::from_conf(config.build())
            }
            None => client,
        };
        Self {
            client,
            bucket: bucket.into(),
            identity,
        }
    }

    /// The lifetime a URL signed now for `requested` gets, and the instant it is signed at
    /// (whole seconds, as `X-Amz-Date` has them).
    async fn lifetime(&self, requested: Duration) -> Result<(Duration, SystemTime), Failure> {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
        let lifetime = match &self.identity {
            Some(identity) => identity.lifetime(requested, signed_at).await?.1,
            None => requested,
        };
        Ok((lifetime, signed_at))
    }

    /// A PUT URL for the whole object, signed for the declared type, length and digests, so
    /// storage refuses any other body.
    pub async fn presign_put(
        &self,
        key: &str,
        content: &ContentDeclaration,
        expires_in: Duration,
    ) -> Result<PresignedPut, Failure> {
        let (lifetime, signed_at) = self.lifetime(expires_in).await?;
        let length = i64::try_from(content.file_size).map_err(|_| {
            Failure::Internal(format!("file size {} overflows i64", content.file_size))
        })?;
        // Only the declared value is set, never `checksum_algorithm` too (awslabs/aws-sdk-rust#1103).
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content.content_type.as_str())
            .content_length(length)
            .set_checksum_sha256(content.sha256.map(|digest| digest.to_base64()))
            .set_content_md5(content.md5.map(|digest| digest.to_base64()))
            // Write-once: a second PUT with this URL cannot replace what landed (or was verified).
            .if_none_match("*")
            .cache_control(PUT_CACHE_CONTROL)
            .tagging(PENDING_TAGGING)
            .presigned(presigning_at(lifetime, signed_at)?)
            .await
            .map_err(|err| Failure::Internal(format!("presign PutObject: {err}")))?;
        Ok(presigned_put(&request, expiry(signed_at, lifetime)))
    }

    /// PUT URLs for `parts` of a multipart upload. Each signs its part's length (and SHA-256,
    /// when given), so storage refuses a part of any other size (or bytes) before it is stored
    /// (and billed). The SDK signs the first; the rest are signed in bulk from it.
    pub async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartToSign],
        expires_in: Duration,
    ) -> Result<PartUrls, Failure> {
        let (lifetime, signed_at) = self.lifetime(expires_in).await?;
        let urls = self
            .parts_at(key, upload_id, parts, lifetime, signed_at)
            .await?;
        Ok(PartUrls {
            urls,
            headers: parts
                .iter()
                .filter(|part| part.sha256.is_some())
                .map(|part| (part.number, part.headers()))
                .collect(),
            expires_at: expiry(signed_at, lifetime),
        })
    }

    /// [`Presigner::presign_parts`] as if signed at `signed_at`.
    pub(crate) async fn parts_at(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartToSign],
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<BTreeMap<u32, String>, Failure> {
        let Some((first, rest)) = parts.split_first() else {
            return Ok(BTreeMap::new());
        };
        let template = self
            .part_at(key, upload_id, first, expires_in, signed_at)
            .await?;
        if !rest.is_empty()
            && let Some(signer) = self.part_signer(&template, first, signed_at).await
        {
            return Ok(signer.urls(parts));
        }
        let mut urls = BTreeMap::from([(first.number, template)]);
        for part in rest {
            urls.insert(
                part.number,
                self.part_at(key, upload_id, part, expires_in, signed_at)
                    .await?,
            );
        }
        Ok(urls)
    }

    async fn part_signer(
        &self,
        template: &str,
        template_part: &PartToSign,
        signed_at: SystemTime,
    ) -> Option<PartUrlSigner> {
        // The credentials the SDK just signed the template with (a concurrent refresh would
        // swap in others, which the check against the template's signature catches).
        let credentials = self.identity.as_ref()?.provide_credentials().await.ok()?;
        let signer = PartUrlSigner::from_template(
            template,
            template_part,
            credentials.secret_access_key(),
            signed_at,
        );
        if signer.is_none() {
            tracing::warn!(
                "bulk part signing disagreed with the SDK; signing each part with the SDK"
            );
        }
        signer
    }

    /// The SDK's presigned URL for one part, as if signed at `signed_at`.
    pub(crate) async fn part_at(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartToSign,
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<String, Failure> {
        let PartToSign { number, length, .. } = *part;
        let part_number = i32::try_from(number)
            .map_err(|_| Failure::Internal(format!("part number {number} overflows i32")))?;
        let length = i64::try_from(length)
            .map_err(|_| Failure::Internal(format!("part length {length} overflows i64")))?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(length)
            // The digest alone, never `checksum_algorithm` too (as for PutObject above).
            .set_checksum_sha256(part.sha256.map(|digest| digest.to_base64()))
            .presigned(presigning_at(expires_in, signed_at)?)
            .await
            .map_err(|err| Failure::Internal(format!("presign UploadPart: {err}")))?;
        Ok(request.uri().to_owned())
    }

    /// [`Presigner::parts_at`], for tests comparing bulk signing with the SDK's.
    #[cfg(feature = "testing")]
    pub async fn presign_parts_at(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartToSign],
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<BTreeMap<u32, String>, Failure> {
        self.parts_at(key, upload_id, parts, expires_in, signed_at)
            .await
    }

    /// [`Presigner::part_at`], for tests comparing bulk signing with the SDK's.
    #[cfg(feature = "testing")]
    pub async fn presign_part_at(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartToSign,
        expires_in: Duration,
        signed_at: SystemTime,
    ) -> Result<String, Failure> {
        self.part_at(key, upload_id, part, expires_in, signed_at)
            .await
    }

    /// A GET URL that downloads the object as an attachment named `file_name`.
    pub async fn presign_download(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<String, Failure> {
        let (lifetime, signed_at) = self.lifetime(expires_in).await?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            // Every header that says how to read the bytes is the service's, whatever was
            // stored: the declared type, as an attachment, as is, and for this URL's reader only.
            .response_content_disposition(content_disposition(file_name))
            .response_content_type(content_type)
            .response_content_encoding("identity")
            .response_cache_control("private, no-store")
            .presigned(presigning_at(lifetime, signed_at)?)
            .await
            .map_err(|err| Failure::Internal(format!("presign GetObject: {err}")))?;
        Ok(request.uri().to_owned())
    }
}

fn expiry(signed_at: SystemTime, lifetime: Duration) -> OffsetDateTime {
    OffsetDateTime::from(signed_at + lifetime)
}

fn presigning_at(expires_in: Duration, signed_at: SystemTime) -> Result<PresigningConfig, Failure> {
    PresigningConfig::builder()
        .start_time(signed_at)
        .expires_in(expires_in)
        .build()
        .map_err(|err| Failure::Internal(format!("presigning config: {err}")))
}

/// The URL and the headers signed into it. The SDK also hands back unsigned headers (such as
/// `x-amzn-trace-id` inside Lambda): clients need not send those, so they are left out.
fn presigned_put(request: &PresignedRequest, expires_at: OffsetDateTime) -> PresignedPut {
    let url = request.uri().to_owned();
    let signed = signed_header_names(&url);
    let headers = request
        .headers()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .filter(|(name, _)| name != "host" && signed.contains(name))
        .collect();
    PresignedPut {
        url,
        headers,
        expires_at,
    }
}

/// The names in a presigned URL's `X-Amz-SignedHeaders` parameter.
fn signed_header_names(url: &str) -> Vec<String> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .map(|names| {
            percent_encoding::percent_decode_str(names)
                .decode_utf8_lossy()
                .split(';')
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 5987 `attr-char`s stay as they are in `filename*`; everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with an ASCII `filename` fallback (quotes, backslashes, `%`, control and
/// non-ASCII characters replaced) and the exact name in `filename*` (RFC 6266).
pub fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| match c {
            ' ' => ' ',
            '"' | '\\' | '%' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

    use crate::domain::fixtures;

    /// A presigner whose credentials expire `left` from now.
    fn signing_for(left: Duration) -> Presigner {
        let credentials = Credentials::new(
            "AKIDSESSION",
            "secret",
            Some("token".into()),
            Some(SystemTime::now() + left),
            "test",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .build();
        Presigner::new(
            Client::from_conf(config),
            "bucket",
            Some(SharedCredentialsProvider::new(credentials)),
        )
    }

    fn query_param<'u>(url: &'u str, name: &str) -> &'u str {
        url.split(['?', '&'])
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{name} in {url}"))
    }

    /// Storage refuses a URL once its signing session ends: what the URL and `expires_at` say
    /// must not be later.
    #[tokio::test]
    async fn urls_and_expires_at_end_with_the_signing_session() {
        let left = Duration::from_secs(600);
        let presigner = signing_for(left);
        let deadline = OffsetDateTime::from(SystemTime::now() + left);
        let hour = Duration::from_secs(3600);

        let put = presigner
            .presign_put(
                "uploads/k",
                &fixtures::content("a.txt", "text/plain", 10),
                hour,
            )
            .await
            .unwrap();
        assert!(
            put.expires_at <= deadline,
            "{} > {deadline}",
            put.expires_at
        );
        assert!(put.expires_at > deadline - Duration::from_secs(5));
        let expires: u64 = query_param(&put.url, "X-Amz-Expires").parse().unwrap();
        assert!((595..=600).contains(&expires), "{expires}");
        assert!(query_param(&put.url, "X-Amz-Credential").starts_with("AKIDSESSION%2F"));

        let parts = presigner
            .presign_parts(
                "uploads/k",
                "up",
                &[(1, 5 << 20), (2, 5 << 20), (3, 7)].map(|(number, length)| PartToSign {
                    number,
                    length,
                    sha256: None,
                }),
                hour,
            )
            .await
            .unwrap();
        assert!(parts.expires_at <= deadline);
        for url in parts.urls.values() {
            let expires: u64 = query_param(url, "X-Amz-Expires").parse().unwrap();
            assert!((595..=600).contains(&expires), "{url}");
        }

        let download = presigner
            .presign_download("uploads/k", "a.txt", "text/plain", hour)
            .await
            .unwrap();
        let expires: u64 = query_param(&download, "X-Amz-Expires").parse().unwrap();
        assert!((595..=600).contains(&expires), "{download}");
    }

    #[tokio::test]
    async fn a_lifetime_the_session_covers_is_given_whole() {
        let presigner = signing_for(Duration::from_secs(3600));
        let before = OffsetDateTime::now_utc();
        let put = presigner
            .presign_put(
                "uploads/k",
                &fixtures::content("a.txt", "text/plain", 10),
                Duration::from_secs(900),
            )
            .await
            .unwrap();
        assert_eq!(query_param(&put.url, "X-Amz-Expires"), "900");
        let lifetime = put.expires_at - before;
        assert!(lifetime <= Duration::from_secs(900) && lifetime > Duration::from_secs(898));
    }

    #[test]
    fn signed_header_names_are_read_from_the_url() {
        let url = "http://h/b/k?x-id=PutObject&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&X-Amz-Signature=ab";
        assert_eq!(
            signed_header_names(url),
            ["content-length", "content-type", "host"]
        );
        assert!(signed_header_names("http://h/b/k").is_empty());
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
    }

    #[test]
    fn quotes_and_header_breaking_characters_cannot_escape_the_value() {
        let value = content_disposition("a\"b\\c\r\nSet-Cookie: x=1;.pdf");
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert_eq!(value.matches('"').count(), 2, "{value}");
        assert!(
            value.contains("filename*=UTF-8''a%22b%5Cc%0D%0ASet-Cookie%3A%20x%3D1%3B.pdf"),
            "{value}"
        );
    }

    #[test]
    fn non_ascii_names_keep_their_exact_form_in_filename_star() {
        let value = content_disposition("résumé 日本.pdf");
        assert!(
            value.starts_with("attachment; filename=\"r_sum_ __.pdf\";"),
            "{value}"
        );
        assert!(
            value.ends_with("filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf"),
            "{value}"
        );
        assert!(value.is_ascii());
    }
}
