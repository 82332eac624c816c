//! `GET /system/df`: what images, containers, volumes and the build cache
//! take on disk, item by item (`docker system df -v` prints it; docker-py's
//! `client.df()` returns it).
//!
//! The totals are the core's `system::disk_usage` (what `dockyard system
//! df` prints); the API also wants each item, so the same measures are
//! taken per item here: an image's unpacked layers, a container's upper
//! directory (`SizeRw`, what it wrote), a volume's data and how many
//! containers mount it.
//!
//! ```text
//! $ curl --unix-socket /run/dockyard.sock http://d/v1.50/system/df
//! {"LayersSize": 4400000, "Images": [...], "Containers": [...], "Volumes": [...], ...}
//! ```

use std::time::SystemTime;

use anyhow::Result;
use serde_json::{json, Value};

use super::http::Response;
use super::netvol::dir_size;
use super::Service;
use dockyard::container::{self, config_of};
use dockyard::{image, state, system};

/// `GET /system/df`.
pub fn df(service: &Service) -> Result<Response> {
    let e = service.engine;
    let totals = system::disk_usage(e)?;
    let records = container::list_all(e)?;
    let configs: Vec<_> = records
        .iter()
        .map(|r| config_of(r).unwrap_or_default())
        .collect();

    let mut images: Vec<Value> = Vec::new();
    for s in image::list(e)? {
        if let Some(v) = images.iter_mut().find(|v| v["Id"] == s.id.as_str()) {
            if let Some(tags) = v["RepoTags"].as_array_mut() {
                tags.push(json!(s.name));
            }
            continue;
        }
        let users = configs.iter().filter(|c| c.image_id == s.id).count();
        let created = s.created.as_deref().map_or(0, unix);
        images.push(json!({
            "Id": s.id, "ParentId": "", "RepoTags": [s.name], "RepoDigests": [],
            "Created": created, "Size": s.size, "SharedSize": 0, "Labels": {},
            "Containers": users,
        }));
    }

    let now = SystemTime::now();
    let containers: Vec<Value> = records
        .iter()
        .zip(&configs)
        .map(|(r, c)| {
            let rw = dir_size(&e.containers.dir_of(&r.id).join("upper"));
            let image_size = images
                .iter()
                .find(|i| i["Id"] == c.image_id.as_str())
                .and_then(|i| i["Size"].as_u64())
                .unwrap_or(0);
            json!({
                "Id": r.id, "Names": [format!("/{}", r.name)], "Image": c.image,
                "ImageID": c.image_id, "Command": c.argv().join(" "),
                "Created": unix(&r.created), "Labels": c.labels,
                "State": r.state.status.as_str(),
                "Status": container::status_text(r, now),
                "SizeRw": rw, "SizeRootFs": rw + image_size, "Mounts": [],
            })
        })
        .collect();

    let vols = &e.volumes;
    let mut volumes = Vec::new();
    for v in vols.list()? {
        let mut doc = vols.inspect(&v);
        let refs = container::volume_users(e, &v.name)?.len();
        doc["UsageData"] = json!({"Size": dir_size(&vols.data(&v.name)), "RefCount": refs});
        volumes.push(doc);
    }

    Ok(Response::json(
        200,
        &json!({
            "LayersSize": totals.images.size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }),
    ))
}

/// Unix seconds of an RFC 3339 time (0 when it is not one).
fn unix(t: &str) -> u64 {
    state::parse_rfc3339(t)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}
