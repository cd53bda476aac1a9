//! mqlite: an embedded, persistent message-queue database in one SQLite file.

mod clock;
mod db;
mod error;
pub mod lang;
mod value;

pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{Database, DatabaseBuilder, Durability, Session};
pub use error::{Error, Result};
pub use value::{ResultSet, Value};
