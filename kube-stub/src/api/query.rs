//! The query parameters of list and watch requests, checked as the API server checks them.

use std::time::Duration;

use crate::catalog::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// Parameters of a list or watch.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion` (empty: unset).
    pub resource_version: String,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `watch=true|1`.
    pub watch: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
}

impl ListQuery {
    /// Parses and checks the query string of a request on `resource`.
    pub fn parse(query: &str, resource: &ResourceType) -> Result<Self, ApiError> {
        let mut q = Self::default();
        let mut send_initial_events = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "labelSelector" => {
                    q.labels = LabelSelector::parse(&value).map_err(ApiError::bad_request)?
                }
                "fieldSelector" => {
                    q.fields =
                        FieldSelector::parse(&value, resource).map_err(ApiError::bad_request)?
                }
                "limit" => q.limit = number(&key, &value)? as usize,
                "continue" if !value.is_empty() => q.continue_token = Some(value.into_owned()),
                "resourceVersion" => q.resource_version = value.into_owned(),
                "resourceVersionMatch" if !value.is_empty() => {
                    q.resource_version_match = Some(value.into_owned())
                }
                "watch" => q.watch = flag(&key, &value)?,
                "allowWatchBookmarks" => q.bookmarks = flag(&key, &value)?,
                "timeoutSeconds" => q.timeout = Some(Duration::from_secs(number(&key, &value)?)),
                "sendInitialEvents" => send_initial_events = Some(flag(&key, &value)?),
                _ => {}
            }
        }
        q.send_initial_events = send_initial_events == Some(true);
        q.check(send_initial_events.is_some())?;
        Ok(q)
    }

    /// The rules of apimachinery's `ValidateListOptions` (list and watch differ).
    fn check(&self, send_initial_events_set: bool) -> Result<(), ApiError> {
        let bad = |m: &str| Err(ApiError::bad_request(m));
        let rv_match = self.resource_version_match.as_deref();
        if self.watch {
            if send_initial_events_set && rv_match != Some("NotOlderThan") {
                return bad(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                );
            }
            if self.send_initial_events && !self.bookmarks {
                return bad("sendInitialEvents requires setting allowWatchBookmarks to true");
            }
            if let Some(rv_match) = rv_match {
                if !send_initial_events_set {
                    return bad(
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    );
                }
                if rv_match != "NotOlderThan" {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: unsupported value {rv_match:?}: supported values: \"NotOlderThan\""
                    )));
                }
                if self.continue_token.is_some() {
                    return bad("resourceVersionMatch is forbidden when continue is provided");
                }
            }
        } else {
            if let Some(rv_match) = rv_match {
                if self.resource_version.is_empty() {
                    return bad(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    );
                }
                if self.continue_token.is_some() {
                    return bad("resourceVersionMatch is forbidden when continue is provided");
                }
                match rv_match {
                    "NotOlderThan" => {}
                    "Exact" if self.resource_version == "0" => {
                        return bad(
                            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                        );
                    }
                    "Exact" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "resourceVersionMatch: unsupported value {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                        )));
                    }
                }
            }
            if send_initial_events_set {
                return bad("sendInitialEvents is forbidden for list");
            }
        }
        if !self.resource_version.is_empty() {
            self.resource_version_number()?;
        }
        Ok(())
    }

    /// `resourceVersion` as a number (0 when unset).
    pub fn resource_version_number(&self) -> Result<u64, ApiError> {
        if self.resource_version.is_empty() {
            return Ok(0);
        }
        self.resource_version.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {:?}: resourceVersion must be an unsigned integer",
                self.resource_version
            ))
        })
    }
}

fn number(key: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{key}: invalid value {value:?}: not a number")))
}

fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "True" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{key}: invalid value {value:?}: not a boolean"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        let catalog = crate::Catalog::kubernetes();
        ListQuery::parse(query, catalog.by_kind("", "Pod").unwrap())
    }

    #[test]
    fn list_and_watch_parameters_parse() {
        let q = parse("labelSelector=app%3Dweb&limit=2&continue=abc&watch=1&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=7").unwrap();
        assert!(q.watch && q.bookmarks);
        assert_eq!((q.limit, q.continue_token.as_deref()), (2, Some("abc")));
        assert_eq!(q.timeout, Some(Duration::from_secs(5)));
        assert_eq!(q.resource_version_number().unwrap(), 7);
        let streaming = parse("watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=&allowWatchBookmarks=true").unwrap();
        assert!(streaming.send_initial_events);
    }

    #[test]
    fn parameters_the_api_server_refuses_are_refused() {
        for query in [
            "resourceVersionMatch=Exact",
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersion=1&resourceVersionMatch=Exact&continue=x",
            "watch=true&sendInitialEvents=true",
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            "watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan",
            "sendInitialEvents=false&resourceVersion=0&resourceVersionMatch=NotOlderThan",
            "resourceVersion=abc",
            "limit=-1",
            "watch=maybe",
            "fieldSelector=spec.foo%3Dbar",
            "labelSelector=a+in+b",
        ] {
            let err = parse(query).unwrap_err();
            assert_eq!(err.code, 400, "{query}: {err}");
        }
    }
}
