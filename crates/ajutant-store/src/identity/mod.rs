//! Identity state: browser sessions, sign-ins in progress, platform API keys, role bindings and
//! the directory's provisioning state. Secrets arrive here already hashed; this module never sees
//! a session id or an API key in the clear.

mod api_keys;
mod directory;
mod roles;
mod sessions;

use time::OffsetDateTime;

use crate::db_time::DbTime;

pub use api_keys::ApiKey;
pub use directory::DirectoryUser;
pub use roles::StoredRoleBinding;
pub use sessions::{LoginAttempt, NewSession, Session};

impl From<DbTime> for OffsetDateTime {
    fn from(value: DbTime) -> Self {
        value.0
    }
}
