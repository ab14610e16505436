//! How an SDK error is handled, decided from the SDK's typed status and storage error code
//! (`ErrorKind::HttpResponse { status, error_code }`, [`StorageErrorCode`]), never from
//! message text.

use std::str::FromStr;

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_storage_blob::models::StorageErrorCode;

/// How an SDK error is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    NotModified,
    BlobNotFound,
    ContainerNotFound,
    Conflict,
    Forbidden,
    Transient,
    Other,
}

/// The storage error code (`x-ms-error-code`) of a service response, typed.
pub(crate) fn storage_error_code(code: Option<&str>) -> Option<StorageErrorCode> {
    code.and_then(|c| StorageErrorCode::from_str(c).ok())
}

/// Whether a 401/403 says the token itself was refused (audience, issuer, expiry), as
/// opposed to a valid identity without a role.
pub(crate) fn is_rejected_token(code: Option<&str>) -> bool {
    matches!(
        storage_error_code(code),
        Some(StorageErrorCode::AuthenticationFailed | StorageErrorCode::InvalidAuthenticationInfo)
    )
}

/// Whether a response refuses the request's credential, so that a renewed SAS may be
/// accepted: a 401, or a 403 whose storage error code is about authentication or
/// authorisation (or absent, as from a proxy). A 403 for another reason (a disabled account)
/// is not retried.
pub(crate) fn is_credential_refusal(status: StatusCode, code: Option<&str>) -> bool {
    match status {
        StatusCode::Unauthorized => true,
        StatusCode::Forbidden => match code {
            None => true,
            Some(code) => matches!(
                storage_error_code(Some(code)),
                Some(
                    StorageErrorCode::AuthenticationFailed
                        | StorageErrorCode::AuthorizationFailure
                        | StorageErrorCode::AuthorizationPermissionMismatch
                        | StorageErrorCode::AuthorizationProtocolMismatch
                        | StorageErrorCode::AuthorizationResourceTypeMismatch
                        | StorageErrorCode::AuthorizationServiceMismatch
                        | StorageErrorCode::AuthorizationSourceIPMismatch
                        | StorageErrorCode::InsufficientAccountPermissions
                        | StorageErrorCode::InvalidAuthenticationInfo
                        | StorageErrorCode::NoAuthenticationInformation
                )
            ),
        },
        _ => false,
    }
}

/// How the repository handles an SDK error.
pub(crate) fn classify(e: &azure_core::Error) -> Class {
    let code = match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => storage_error_code(error_code.as_deref()),
        ErrorKind::Io | ErrorKind::Connection => return Class::Transient,
        _ => return Class::Other,
    };
    match e.http_status() {
        Some(StatusCode::NotModified) => Class::NotModified,
        Some(StatusCode::NotFound) if code == Some(StorageErrorCode::ContainerNotFound) => {
            Class::ContainerNotFound
        }
        Some(StatusCode::NotFound) => Class::BlobNotFound,
        Some(StatusCode::Conflict) | Some(StatusCode::PreconditionFailed) => Class::Conflict,
        Some(StatusCode::Forbidden) | Some(StatusCode::Unauthorized) => Class::Forbidden,
        Some(
            StatusCode::RequestTimeout
            | StatusCode::TooManyRequests
            | StatusCode::InternalServerError
            | StatusCode::BadGateway
            | StatusCode::ServiceUnavailable
            | StatusCode::GatewayTimeout,
        ) => Class::Transient,
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refused_credentials_are_renewed() {
        for code in [
            None,
            Some("AuthenticationFailed"),
            Some("AuthorizationFailure"),
            Some("AuthorizationPermissionMismatch"),
        ] {
            assert!(
                is_credential_refusal(StatusCode::Forbidden, code),
                "{code:?}"
            );
        }
        assert!(is_credential_refusal(StatusCode::Unauthorized, None));
        assert!(!is_credential_refusal(
            StatusCode::Forbidden,
            Some("AccountIsDisabled")
        ));
        assert!(!is_credential_refusal(
            StatusCode::NotFound,
            Some("AuthenticationFailed")
        ));
        assert!(!is_credential_refusal(StatusCode::PreconditionFailed, None));
    }
}
