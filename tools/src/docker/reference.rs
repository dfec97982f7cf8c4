//! Image references, normalised the way Docker does, and where an image comes from.
//!
//! `nginx` and `docker.io/library/nginx:latest` are the same image; only the
//! `docker.io/library/` namespace holds Docker's official images. A first path
//! component with a `.` or `:` in it, or `localhost`, names a registry; anything
//! else is a Docker Hub namespace. `localhost/…` (podman's name for images
//! built or imported here) and `localhost:PORT/…` are local.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/nginx`, `randomuser/xmrig-helper`).
    pub path: String,
    /// Tag, when one was given (`None` means Docker's implicit `latest`, unless a digest pins it).
    pub tag: Option<String>,
    /// Digest (`sha256:…`) when the reference is pinned.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parse a reference as `docker run` would. `None` for an empty string or an image id.
    pub fn parse(reference: &str) -> Option<ImageRef> {
        let r = reference.trim();
        if r.is_empty() || is_image_id(r) {
            return None;
        }
        let (name_tag, digest) = match r.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (r, None),
        };
        let slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[slash..].rfind(':') {
            Some(i) => (&name_tag[..slash + i], Some(name_tag[slash + i + 1..].to_string())),
            None => (name_tag, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_string(),
            _ => registry,
        };
        let path = if registry == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
        if path.is_empty() {
            return None;
        }
        Some(ImageRef { registry, path, tag: tag.filter(|t| !t.is_empty()), digest })
    }

    /// `registry/path`, the repository without tag or digest (stable across updates).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The full normalised reference: `docker.io/library/nginx:latest`.
    pub fn normalized(&self) -> String {
        let mut s = self.repository();
        match (&self.tag, &self.digest) {
            (Some(t), _) => s.push_str(&format!(":{t}")),
            (None, None) => s.push_str(":latest"),
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            s.push_str(&format!("@{d}"));
        }
        s
    }

    /// True for Docker's official images (`docker.io/library/*`).
    pub fn is_official(&self) -> bool {
        self.registry == "docker.io" && self.path.starts_with("library/") && self.path.matches('/').count() == 1
    }

    /// True for images named as local (`localhost/…`, `localhost:PORT/…`, `127.0.0.1…`).
    pub fn is_local(&self) -> bool {
        let host = self.registry.split(':').next().unwrap_or("");
        host == "localhost" || host == "127.0.0.1" || host == "[::1]"
    }

    /// True when it floats: no tag and no digest, or the `latest` tag without a digest.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref().is_none_or(|t| t == "latest")
    }

    /// True when a digest pins exactly what runs.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// Where the image comes from, given the configured trusted publishers.
    pub fn provenance(&self, verified_publishers: &[String]) -> Provenance {
        if self.is_official() {
            return Provenance::Official;
        }
        if self.is_local() {
            return Provenance::Local;
        }
        let repo = self.repository();
        let trusted = verified_publishers
            .iter()
            .filter_map(|p| publisher_prefix(p))
            .any(|p| repo == p || repo.strip_prefix(&p).is_some_and(|rest| rest.starts_with('/')));
        if trusted { Provenance::Verified } else { Provenance::ThirdParty }
    }
}

/// A configured publisher (`bitnami`, `ghcr.io/acme`) as a repository prefix.
fn publisher_prefix(p: &str) -> Option<String> {
    let p = p.trim().trim_end_matches('/');
    if p.is_empty() {
        return None;
    }
    let first = p.split('/').next().unwrap_or("");
    if first.contains(['.', ':']) || first == "localhost" {
        let r = ImageRef::parse(&format!("{p}/x"))?;
        Some(r.repository().trim_end_matches("/x").to_string())
    } else {
        Some(format!("docker.io/{p}"))
    }
}

/// True for `sha256:…` ids and bare 64-hex ids.
pub fn is_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (s.starts_with("sha256:") || hex.len() == 64) && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// A Docker official image (`docker.io/library/*`).
    Official,
    /// From a publisher listed in `[docker] verified_publishers`.
    Verified,
    /// Built or imported on this host (`localhost/…`).
    Local,
    /// Anyone else: an unofficial publisher, or no name at all.
    ThirdParty,
}

impl Provenance {
    /// True when the image is neither official, nor trusted, nor local.
    pub fn is_unofficial(self) -> bool {
        self == Provenance::ThirdParty
    }
}
