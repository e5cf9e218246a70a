//! The API's routes, each declared once: method, path, the operation, the function that serves
//! it, and who may call it. [`super::call`] dispatches and checks access by this table; the
//! template's routes and the local router are held to it (`tests/tests/api/events.rs`).

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An application, with an API key of the project.
    ApiKey,
    /// An API key, or an upload token of the project (within the token's bounds, which the
    /// route applies).
    Token,
    /// An API key, or the upload token that created the path's file.
    TokenOfTheFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateFile,
    ListFiles,
    GetFile,
    DeleteFile,
    Usage,
    Complete,
    Reupload,
    SignParts,
    ListParts,
    AbortUpload,
    DirectUpload,
    MintToken,
    SetWebhook,
    GetWebhook,
    DeleteWebhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub operation: Operation,
    /// The function that serves it: its directory under `functions/`.
    pub function: &'static str,
    pub access: Access,
}

const fn route(
    method: &'static str,
    path: &'static str,
    operation: Operation,
    function: &'static str,
    access: Access,
) -> Route {
    Route {
        method,
        path,
        operation,
        function,
        access,
    }
}

use Access::{ApiKey, Token, TokenOfTheFile};
use Operation::*;

/// Every route of docs/API.md. Upload tokens create files, upload directly and finish the
/// uploads of the files they created; everything else is the application's.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/projects/{project_id}/files", CreateFile, "presign", Token),
    route("GET", "/v1/projects/{project_id}/files", ListFiles, "files", ApiKey),
    route("GET", "/v1/projects/{project_id}/files/{file_id}", GetFile, "files", TokenOfTheFile),
    route("DELETE", "/v1/projects/{project_id}/files/{file_id}", DeleteFile, "files", ApiKey),
    route("GET", "/v1/projects/{project_id}/usage", Usage, "files", ApiKey),
    route("POST", "/v1/projects/{project_id}/files/{file_id}/complete", Complete, "complete", TokenOfTheFile),
    route("POST", "/v1/projects/{project_id}/files/{file_id}/reupload", Reupload, "reupload", ApiKey),
    route("POST", "/v1/projects/{project_id}/files/{file_id}/parts", SignParts, "reupload", TokenOfTheFile),
    route("GET", "/v1/projects/{project_id}/files/{file_id}/parts", ListParts, "reupload", TokenOfTheFile),
    route("DELETE", "/v1/projects/{project_id}/files/{file_id}/upload", AbortUpload, "reupload", TokenOfTheFile),
    route("POST", "/v1/projects/{project_id}/uploads", DirectUpload, "direct", Token),
    route("POST", "/v1/projects/{project_id}/upload-tokens", MintToken, "tokens", ApiKey),
    route("PUT", "/v1/projects/{project_id}/webhook", SetWebhook, "webhooks", ApiKey),
    route("GET", "/v1/projects/{project_id}/webhook", GetWebhook, "webhooks", ApiKey),
    route("DELETE", "/v1/projects/{project_id}/webhook", DeleteWebhook, "webhooks", ApiKey),
];

impl Route {
    /// `"METHOD /path"`, as API Gateway names a route.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether a request of `method` on `path` takes this route. The path is matched by its
    /// last segments, so that a stage's prefix (`/prod/v1/…`) does not matter.
    fn matches(&self, method: &str, path: &str) -> bool {
        let mut segments = path.trim_end_matches('/').rsplit('/');
        method.eq_ignore_ascii_case(self.method)
            && self.path.trim_matches('/').rsplit('/').all(|want| {
                segments
                    .next()
                    .is_some_and(|got| match want.starts_with('{') {
                        true => !got.is_empty(),
                        false => want == got,
                    })
            })
    }
}

/// The route a request of `method` on `path` takes; `None`: no route (404).
pub fn find(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.matches(method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_takes_its_own_route() {
        let take = |method: &str, path: &str| find(method, path).map(|route| route.operation);
        assert_eq!(take("POST", "/v1/projects/p1/files"), Some(CreateFile));
        assert_eq!(take("GET", "/v1/projects/p1/files"), Some(ListFiles));
        assert_eq!(take("GET", "/v1/projects/p1/files/f1"), Some(GetFile));
        assert_eq!(take("GET", "/v1/projects/p1/usage"), Some(Usage));
        assert_eq!(
            take("DELETE", "/v1/projects/p1/files/f1/upload"),
            Some(AbortUpload)
        );
        assert_eq!(
            take("GET", "/prod/v1/projects/p1/files/f1/parts"),
            Some(ListParts)
        );
        assert_eq!(take("PATCH", "/v1/projects/p1/files"), None);
        assert_eq!(take("GET", "/v1/projects/p1/files/f1/nothing"), None);
        assert_eq!(take("GET", "/v1/projects//files"), None);
        assert_eq!(take("GET", "/v2/projects/p1/files"), None);
    }

    #[test]
    fn every_route_is_declared_once() {
        for (index, route) in ROUTES.iter().enumerate() {
            let again = ROUTES[index + 1..]
                .iter()
                .find(|other| other.key() == route.key());
            assert!(again.is_none(), "{}", route.key());
        }
    }
}
