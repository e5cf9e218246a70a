//! `multipart/form-data` bodies, as the direct upload takes them: parsed by `multer` (axum's
//! parser) as a stream, within a limit on the whole body and on the number of files.

use bytes::Bytes;
use futures_util::stream;
use lambda_http::Request;
use lambda_http::http::header;

use crate::domain::error::{Detail, Refusal};
use crate::error::Error;

/// One `file` part: its bytes and what the client said they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormFile {
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// A direct upload's form: its files in the order sent, and the optional `name` and `meta`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub files: Vec<FormFile>,
    pub name: Option<String>,
    pub meta: Option<String>,
}

const FIELDS: [&str; 3] = ["file", "name", "meta"];
/// `name` and `meta` are short texts; a larger one is refused before it is buffered.
const MAX_TEXT_BYTES: u64 = 64 * 1024;

/// Reads the form of `request`: 413 over `max_bytes`, 400 for a body that is not a well-formed
/// form, 422 naming the part for an unknown field, a repeated `name` or `meta`, or more than
/// `max_files` files.
pub async fn read_form(request: &Request, max_bytes: u64, max_files: usize) -> Result<Form, Error> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        Refusal::BadRequest("the body must be multipart/form-data with a boundary".into())
    })?;
    let body: &[u8] = request.body().as_ref();
    if body.len() as u64 > max_bytes {
        return Err(Refusal::body_too_large(max_bytes).into());
    }
    let body = Bytes::copy_from_slice(body);
    let constraints = multer::Constraints::new()
        .allowed_fields(FIELDS.to_vec())
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_bytes)
                .for_field("name", MAX_TEXT_BYTES)
                .for_field("meta", MAX_TEXT_BYTES),
        );
    let mut multipart = multer::Multipart::with_constraints(
        stream::once(async move { Ok::<_, std::convert::Infallible>(body) }),
        boundary,
        constraints,
    );
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(refusal)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if form.files.len() == max_files {
                    return Err(Refusal::invalid(
                        "file",
                        format!("at most {max_files} files per request"),
                    )
                    .into());
                }
                let file_name = field.file_name().map(str::to_owned);
                // As sent: what it says is checked as any declared type is (multer's own
                // reading would take a malformed type for none).
                let content_type = field
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
                let bytes = field.bytes().await.map_err(refusal)?;
                form.files.push(FormFile {
                    file_name,
                    content_type,
                    bytes,
                });
            }
            "name" | "meta" => {
                let text = field.text().await.map_err(refusal)?;
                let slot = if name == "name" {
                    &mut form.name
                } else {
                    &mut form.meta
                };
                if slot.replace(text).is_some() {
                    return Err(Refusal::invalid(name, "must be sent at most once").into());
                }
            }
            _ => return Err(unknown_field(&name)),
        }
    }
    Ok(form)
}

fn unknown_field(name: &str) -> Error {
    Refusal::Validation(vec![Detail::field(
        if name.is_empty() { "form" } else { name },
        "is not a field of a direct upload: send file (one or more), name and meta",
    )])
    .into()
}

/// What a malformed form is: an unknown field (422), a body over its limit (413), or a body
/// that is no form at all (400).
fn refusal(err: multer::Error) -> Error {
    match err {
        multer::Error::UnknownField { field_name } => {
            unknown_field(field_name.as_deref().unwrap_or_default())
        }
        multer::Error::FieldSizeExceeded { field_name, limit } => Refusal::invalid(
            field_name.unwrap_or_else(|| "form".into()),
            format!("must be at most {limit} bytes"),
        )
        .into(),
        multer::Error::StreamSizeExceeded { limit } => Refusal::body_too_large(limit).into(),
        other => Refusal::BadRequest(format!("the body is not a well-formed form: {other}")).into(),
    }
}
