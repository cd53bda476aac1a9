//! What the application's own SQL may do on a transaction's connection.
//!
//! [`Transaction::connection`](crate::Transaction::connection) hands the
//! application the connection that holds mqlite's open transaction. An
//! authorizer, installed once when the connection is opened, checks every
//! statement the application prepares while it holds the connection and
//! refuses what could break mqlite: writing or reshaping `mq_` tables (and
//! `sqlite_` ones), transaction control, temporary objects, ATTACH, and
//! pragmas other than reads. mqlite's own statements are prepared with the
//! check off (one relaxed atomic load per authorizer call, at prepare time
//! only: cached statements are never re-authorized). Installing it once
//! matters: `sqlite3_set_authorizer` expires every prepared statement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::Result;

/// The connection flags the application can change through the
/// `Connection` API, where no authorizer sees it (`FP_DIGITS` is not a flag).
const FLAGS: [DbConfig; 20] = [
    DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY,
    DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
    DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER,
    DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
    DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
    DbConfig::SQLITE_DBCONFIG_TRIGGER_EQP,
    DbConfig::SQLITE_DBCONFIG_RESET_DATABASE,
    DbConfig::SQLITE_DBCONFIG_DEFENSIVE,
    DbConfig::SQLITE_DBCONFIG_WRITABLE_SCHEMA,
    DbConfig::SQLITE_DBCONFIG_LEGACY_ALTER_TABLE,
    DbConfig::SQLITE_DBCONFIG_DQS_DML,
    DbConfig::SQLITE_DBCONFIG_DQS_DDL,
    DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW,
    DbConfig::SQLITE_DBCONFIG_LEGACY_FILE_FORMAT,
    DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
    DbConfig::SQLITE_DBCONFIG_STMT_SCANSTATUS,
    DbConfig::SQLITE_DBCONFIG_REVERSE_SCANORDER,
    DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE,
    DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE,
    DbConfig::SQLITE_DBCONFIG_ENABLE_COMMENTS,
];

/// A transaction connection with its application-SQL switch.
#[derive(Debug)]
pub(crate) struct TxConn {
    conn: Connection,
    /// True while the application holds the connection.
    app: Arc<AtomicBool>,
    /// The busy timeout and `FLAGS` as mqlite set them, restored by `reset`.
    busy_ms: u64,
    flags: Vec<(DbConfig, bool)>,
}

impl TxConn {
    /// Installs the authorizer (off until [`TxConn::lend`]).
    pub(crate) fn new(mut conn: Connection) -> Result<TxConn> {
        let busy_ms: i64 = conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
        let busy_ms = u64::try_from(busy_ms).unwrap_or(0);
        let flags = FLAGS
            .iter()
            .map(|&f| Ok((f, conn.db_config(f)?)))
            .collect::<Result<_>>()?;
        let app = Arc::new(AtomicBool::new(false));
        let on = Arc::clone(&app);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if !on.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            match refusal(&ctx) {
                None => Authorization::Allow,
                Some(why) => {
                    crate::error::record_refusal(why);
                    Authorization::Deny
                }
            }
        }))?;
        Ok(TxConn {
            conn,
            app,
            busy_ms,
            flags,
        })
    }

    /// Undoes what the application may have changed outside SQL (the busy
    /// timeout and `FLAGS`), before the connection serves another
    /// transaction. A few C calls: far cheaper than a new connection
    /// (1.8 ms measured).
    pub(crate) fn reset(&self) -> Result<()> {
        let c = self.own();
        c.busy_timeout(Duration::from_millis(self.busy_ms))?;
        for &(f, on) in &self.flags {
            c.set_db_config(f, on)?;
        }
        Ok(())
    }

    /// The connection for the application: its statements are checked.
    pub(crate) fn lend(&self) -> &Connection {
        self.app.store(true, Ordering::Relaxed);
        &self.conn
    }

    /// The connection for mqlite's own statements: unchecked.
    pub(crate) fn own(&self) -> &Connection {
        self.app.store(false, Ordering::Relaxed);
        &self.conn
    }
}

/// mqlite's tables and views, and SQLite's tables that hold state of them
/// (AUTOINCREMENT counters, planner statistics). `sqlite_schema` is not
/// here: DDL writes it through the authorizer, and SQLite itself refuses
/// direct writes to it unless `writable_schema`, which is refused.
fn reserved(name: &str) -> bool {
    let n = name.as_bytes();
    let prefix = |p: &[u8]| n.len() >= p.len() && n[..p.len()].eq_ignore_ascii_case(p);
    prefix(b"mq_") || prefix(b"sqlite_sequence") || prefix(b"sqlite_stat")
}

/// Why the application may not do `ctx`, or None when it may.
fn refusal(ctx: &AuthContext<'_>) -> Option<String> {
    use AuthAction as A;
    let schema = |name: &str, what: &str| {
        reserved(name).then(|| format!("{what} {name}: mq_ names and their schema are mqlite's"))
    };
    let write = |name: &str| {
        reserved(name).then(|| {
            format!("write to {name}: it holds mqlite's state; change that through mqlite's API")
        })
    };
    let temp = |name: &str| {
        Some(format!(
            "create or drop the temporary object {name}: temporary objects would outlive the transaction"
        ))
    };
    match ctx.action {
        A::Select | A::Read { .. } | A::Function { .. } | A::Recursive | A::Reindex { .. } => None,
        A::Insert { table_name } | A::Delete { table_name } | A::Update { table_name, .. } => {
            write(table_name)
        }
        A::CreateTable { table_name } => schema(table_name, "create table"),
        A::DropTable { table_name } => schema(table_name, "drop table"),
        A::AlterTable { table_name, .. } => schema(table_name, "alter table"),
        A::Analyze { table_name } => schema(table_name, "analyze"),
        A::CreateView { view_name } => schema(view_name, "create view"),
        A::DropView { view_name } => schema(view_name, "drop view"),
        A::CreateIndex { table_name, .. } | A::DropIndex { table_name, .. } => {
            schema(table_name, "create or drop an index on")
        }
        A::CreateTrigger { table_name, .. } | A::DropTrigger { table_name, .. } => {
            schema(table_name, "create or drop a trigger on")
        }
        A::CreateVtable { table_name, .. } | A::DropVtable { table_name, .. } => {
            if ctx.database_name == Some("temp") {
                temp(table_name)
            } else {
                schema(table_name, "create or drop virtual table")
            }
        }
        A::CreateTempTable { table_name: n }
        | A::DropTempTable { table_name: n }
        | A::CreateTempView { view_name: n }
        | A::DropTempView { view_name: n }
        | A::CreateTempIndex { index_name: n, .. }
        | A::DropTempIndex { index_name: n, .. }
        | A::CreateTempTrigger { trigger_name: n, .. }
        | A::DropTempTrigger { trigger_name: n, .. } => temp(n),
        A::Transaction { .. } | A::Savepoint { .. } => Some(
            "run BEGIN, COMMIT, ROLLBACK or savepoints: the transaction is mqlite's; use Transaction::commit/rollback"
                .into(),
        ),
        A::Attach { .. } | A::Detach { .. } => {
            Some("ATTACH or DETACH databases inside a transaction".into())
        }
        A::Pragma { pragma_name, pragma_value } => pragma(pragma_name, pragma_value),
        _ => Some("run this statement: mqlite does not know what it changes".into()),
    }
}

/// Pragmas that only report, with or without an argument.
const REPORTS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "database_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
    "data_version",
    "page_count",
    "freelist_count",
];

/// Settings the application may read (no argument) but not change.
const SETTINGS: &[&str] = &[
    "application_id",
    "user_version",
    "schema_version",
    "journal_mode",
    "synchronous",
    "foreign_keys",
    "query_only",
    "busy_timeout",
    "cache_size",
    "page_size",
    "encoding",
    "auto_vacuum",
    "max_page_count",
    "recursive_triggers",
    "writable_schema",
    "temp_store",
    "mmap_size",
    "locking_mode",
    "secure_delete",
    "cell_size_check",
    "trusted_schema",
    "case_sensitive_like",
    "ignore_check_constraints",
    "automatic_index",
    "legacy_alter_table",
];

fn pragma(name: &str, value: Option<&str>) -> Option<String> {
    let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(name));
    // Reset by SQLite at every COMMIT/ROLLBACK, so it cannot outlive the transaction.
    if is(REPORTS)
        || name.eq_ignore_ascii_case("defer_foreign_keys")
        || (value.is_none() && is(SETTINGS))
    {
        return None;
    }
    Some(match value {
        Some(v) => format!(
            "set PRAGMA {name} = {v}: connection settings and the file's identity belong to mqlite"
        ),
        None => format!("run PRAGMA {name}: only reading pragmas are allowed"),
    })
}
