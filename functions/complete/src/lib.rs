//! `POST /v1/projects/{project_id}/files/{file_id}/complete`: the client says its bytes are in
//! storage; the service checks that they are (assembling a multipart upload from its parts) and
//! marks the file `uploaded`. Idempotent.
//!
//! An upload of more than `ASSEMBLE_INLINE_MAX_PARTS` parts is not assembled here: S3 may take
//! minutes over thousands of parts, past API Gateway's 30 seconds. Its parts are checked, verify
//! is handed the assembly through its queue, and the answer is 202 with the file `uploaded`;
//! the assembled object's `ObjectCreated` event settles it as any other.

use lambda_http::{Body, Request, Response};
use shared::app::complete::{self, Completion};
use shared::app::verify_queue::VerifyQueue;
use shared::app::{Services, release};
use shared::domain::{FileRecord, storage, timestamp};
use shared::dynamo::Update;
use shared::error::Error;
use shared::http::{self, Call, Reply, parse};

/// Answers the request; uploads of many parts go to verify's `queue` to be assembled.
pub async fn handle(services: &Services, queue: &VerifyQueue, request: Request) -> Response<Body> {
    http::serve(request, |request| async move {
        let call = http::call(&services.table, &request).await?;
        http::idempotent(&services.table, &call.idempotency_scope(), &request, |_| {
            Box::pin(complete(services, queue, &call, &request))
        })
        .await
    })
    .await
}

async fn complete(
    services: &Services,
    queue: &VerifyQueue,
    call: &Call,
    request: &Request,
) -> Result<Reply, Error> {
    let (project_id, file_id) = (call.project_id.as_str(), call.file_id()?);
    let body = http::json_object(request, parse::COMPLETE_FIELDS)?;
    let expected_job = parse::completed_job(body.as_ref())?;
    let (sha256, md5) = parse::completed_digests(body.as_ref())?;

    let file = (services.table.files)
        .get_in_project(project_id, file_id)
        .await?;
    let job = file.current_job(expected_job)?.clone();
    // Recorded before the object is assembled, whose event starts verify: so verify checks
    // them (and a verify already under way checks again, see `FileRecord::settle_checked`).
    let file = if sha256.is_some() || md5.is_some() {
        let now = timestamp::now();
        match services
            .table
            .files
            .update(file, |file| {
                file.declare_digests(job.job_id, sha256, md5, now)
            })
            .await?
        {
            Update::Applied { after: file, .. } | Update::Unchanged(file) => file,
            Update::Refused(refusal, _) => return Err(refusal.into()),
        }
    } else {
        file
    };
    if file.upload_in_progress().is_err() {
        // Completed before, or already settled by the verify trigger: the file as it is.
        return render(services, &file).await;
    }
    let reported = match job.upload_id {
        Some(_) => parse::reported_parts(body.as_ref(), job.part_count)?,
        None => None,
    };
    let completion =
        complete::bring_together(services, queue, &file, &job, reported.as_deref()).await;
    if let Err(err) = completion {
        // The verify trigger may have settled the file since it was read, and removed the
        // content it rejected: then the file as it now is, not a missing object.
        let latest = (services.table.files)
            .get_in_project(project_id, file_id)
            .await?;
        // Replaced or aborted meanwhile: refused, as if it had been read so.
        latest.current_job(Some(job.job_id))?;
        if latest.upload_in_progress().is_err() {
            return render(services, &latest).await;
        }
        return Err(err);
    }
    let handed_over = matches!(completion, Ok(Completion::HandedToVerify));

    let now = timestamp::now();
    match services
        .table
        .files
        .update(file, |file| file.mark_uploaded(job.job_id, now))
        .await?
    {
        Update::Applied { after: file, .. } if handed_over => Ok(Reply::accepted(
            http::render_file(services, &file).await?.to_json(),
        )),
        // Or a racing complete or verify got there first: the state it left.
        Update::Applied { after: file, .. } | Update::Unchanged(file) => {
            render(services, &file).await
        }
        Update::Refused(refusal, file) => {
            // Replaced while we assembled it: what we stored is nobody's, unless it was verified.
            let freed = storage::not_held(job.storage(), Some(&file));
            release::best_effort(&services.storage.objects, &freed).await;
            Err(refusal.into())
        }
    }
}

async fn render(services: &Services, record: &FileRecord) -> Result<Reply, Error> {
    Ok(Reply::ok(
        http::render_file(services, record).await?.to_json(),
    ))
}
