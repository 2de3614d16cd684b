//! Reading an upload: multipart `file` parts (each kept only up to the document size limit, so
//! one oversized file fails alone while the rest go on) and an optional `acl` part narrowing
//! who may read them. Nothing here decides access or writes anything.

use std::collections::HashSet;

use ajutant_store::NewItem;
use axum::extract::Multipart;

use crate::problem::ApiError;

/// The files of an upload and the ACL they carry.
pub(crate) struct Upload {
    pub items: Vec<NewItem>,
    pub acl: Option<Vec<String>>,
}

/// Reads every part; `limit` is the most bytes kept of one file.
pub(crate) async fn read(mut multipart: Multipart, limit: u64) -> Result<Upload, ApiError> {
    let mut items = Vec::new();
    let mut acl: Option<Vec<String>> = None;
    let mut names = HashSet::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("the multipart body cannot be read: {e}")))?
    {
        match field.name() {
            Some("acl") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("acl: {e}")))?;
                let groups: Vec<String> = serde_json::from_str(&text).map_err(|e| {
                    ApiError::BadRequest(format!("acl must be a JSON array of group ids: {e}"))
                })?;
                acl = Some(groups);
            }
            Some("file") => {
                let name = field
                    .file_name()
                    .map(sanitize_name)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        ApiError::BadRequest("every file part needs a file name".to_owned())
                    })?;
                if !names.insert(name.clone()) {
                    return Err(ApiError::BadRequest(format!(
                        "{name} is in the upload twice"
                    )));
                }
                let content_type = field.content_type().map(str::to_owned);
                let mut bytes = Vec::new();
                let mut size: u64 = 0;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?
                {
                    size += chunk.len() as u64;
                    // Keep reading past the limit (the next part follows), but keep nothing.
                    if size <= limit {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                let refused = (size > limit).then(|| {
                    (
                        "too_large".to_owned(),
                        format!("{name} is {size} bytes, over the limit of {limit} bytes"),
                    )
                });
                items.push(NewItem {
                    source_key: name.clone(),
                    name,
                    content_type,
                    acl: None,
                    url: None,
                    content: if refused.is_some() { None } else { Some(bytes) },
                    refused,
                });
            }
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part {other:?}: send `file` parts and an optional `acl`"
                )));
            }
            None => return Err(ApiError::BadRequest("a part has no name".to_owned())),
        }
    }
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "no files: send one or more `file` parts".to_owned(),
        ));
    }
    if let Some(groups) = &acl {
        if let Some(bad) = groups.iter().find(|g| g.trim().is_empty() || g.len() > 200) {
            return Err(ApiError::BadRequest(format!(
                "acl: {bad:?} is not a group id"
            )));
        }
        for item in &mut items {
            item.acl = Some(groups.clone());
        }
    }
    Ok(Upload { items, acl })
}

/// A file name as a document key: the last path component, without control characters.
fn sanitize_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    last.chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect::<String>()
        .trim()
        .to_owned()
}
