//! The `{"error": CODE, "message": TEXT}` body every refusal uses, on the
//! webhook listener and the admin listener alike.

use http::StatusCode;
use warp::Reply;
use warp::reply::Response;

/// `{"error": code, "message": message}` with `status`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
