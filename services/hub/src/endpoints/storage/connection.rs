//! Storage endpoint connection strings: `file://<dir>`, Azure Storage account connection strings
//! and `UseDevelopmentStorage=true`. The parser lives in [`blob_store`], shared with
//! `storage-archiver`; see its docs for the shapes and the errors.

pub use blob_store::{ConnectionStringError, DEV_ACCOUNT, DEV_ACCOUNT_KEY, StorageConnection};
