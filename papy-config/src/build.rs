//! Building the engine's objects from a validated file: a NuMap per
//! resource (through its kind), a Piper per node, the Dagger.

use std::collections::BTreeMap;

use papy_core::{Dagger, NuMap, Piper};

use crate::chain;
use crate::error::{ConfigError, Result};
use crate::kinds::{self, BuildContext};
use crate::load::Loaded;
use crate::model::{PipelineFile, PiperSpec, Resource};
use crate::problem::Problem;
use crate::validate::{connect, validate};

/// A NuMap for a resource.
///
/// # Errors
/// Invalid settings or a pool that cannot start.
pub fn numap_of(name: &str, r: &Resource, ctx: &BuildContext<'_>) -> Result<NuMap> {
    let mut b = NuMap::builder().name(name).ordered(r.numap.ordered);
    if let Some(s) = r.numap.stride {
        b = b.stride(s);
    }
    if let Some(buf) = r.numap.buffer {
        b = b.buffer(buf);
    }
    let b = kinds::apply(&r.numap.kind, &r.settings, name, b, ctx).map_err(|e| {
        ConfigError::Engine(papy_core::Error::Config(format!("resource `{name}`: {e}")))
    })?;
    Ok(b.build()?)
}

/// The Piper of a spec, on its resource's NuMap.
///
/// # Errors
/// Its worker chain cannot be built, or an unknown resource.
pub fn piper_of(spec: &PiperSpec, numaps: &BTreeMap<String, NuMap>) -> Result<Piper> {
    piper_on(spec, numaps, &[])
}

/// As [`piper_of`], for a node whose resource's workers provide `provided`.
///
/// # Errors
/// As [`piper_of`].
pub fn piper_on(
    spec: &PiperSpec,
    numaps: &BTreeMap<String, NuMap>,
    provided: &[String],
) -> Result<Piper> {
    let name = &spec.name;
    let worker = chain::worker_on(spec, provided).map_err(|ps| {
        let msg: Vec<String> = ps.into_iter().map(|(_, e)| e).collect();
        papy_core::Error::Config(format!("piper `{name}`: {}", msg.join("; ")))
    })?;
    let mut piper = Piper::new(name.clone(), worker).with_options(spec.options.clone());
    if let Some(r) = &spec.resource {
        let m = numaps.get(r).ok_or_else(|| {
            papy_core::Error::Config(format!("piper `{name}`: unknown resource `{r}`"))
        })?;
        piper = piper.parallel(m);
    }
    piper.validate()?;
    Ok(piper)
}

/// The Dagger of a model: its NuMaps and pipers, connected. Call it on a
/// model that passed [`validate`] ([`dagger_of_loaded`] does both).
///
/// # Errors
/// As [`numap_of`] and [`piper_of`], and cycles.
pub fn dagger_of(f: &PipelineFile, ctx: &BuildContext<'_>) -> Result<Dagger> {
    let mut numaps = BTreeMap::new();
    for (name, r) in &f.resources {
        let on_it = BuildContext {
            worker_command: ctx.worker_command,
            functions: functions_on(f, name),
            dir: ctx.dir,
        };
        numaps.insert(name.clone(), numap_of(name, r, &on_it)?);
    }
    let isolated = isolated_pipers(f);
    if !isolated.is_empty() && f.resources.contains_key(ISOLATED) {
        return Err(papy_core::Error::Config(format!(
            "[plugins] isolate needs the resource name `{ISOLATED}` for its worker processes; rename that resource"
        ))
        .into());
    }
    if !isolated.is_empty() {
        let on_it = BuildContext {
            worker_command: ctx.worker_command,
            functions: isolated_functions(f, &isolated),
            dir: ctx.dir,
        };
        let processes = Resource {
            numap: crate::model::NuMapSettings {
                kind: "process".into(),
                ..crate::model::NuMapSettings::default()
            },
            settings: toml::Table::new(),
        };
        numaps.insert(
            ISOLATED.to_string(),
            numap_of(ISOLATED, &processes, &on_it)?,
        );
    }
    let mut d = Dagger::new();
    for p in &f.pipers {
        let provided = p
            .resource
            .as_ref()
            .and_then(|r| f.resources.get(r))
            .map(|r| r.provided_functions())
            .unwrap_or_default();
        if isolated.contains(&p.name) {
            let moved = PiperSpec {
                resource: Some(ISOLATED.to_string()),
                ..p.clone()
            };
            d.add_piper(piper_on(&moved, &numaps, &provided)?)?;
            continue;
        }
        d.add_piper(piper_on(p, &numaps, &provided)?)?;
    }
    connect(f, &mut d)?;
    Ok(d)
}

/// The name of the process pool that runs isolated plugin functions.
const ISOLATED: &str = "plugins-isolated";

/// With `[plugins] isolate`, the pipers that call a plugin function and
/// would run in this process (on a thread resource, or on none).
fn isolated_pipers(f: &PipelineFile) -> Vec<String> {
    if !f.plugins.isolate {
        return Vec::new();
    }
    f.pipers
        .iter()
        .filter(|p| {
            let on_threads = match &p.resource {
                None => true,
                Some(r) => f.resources.get(r).is_some_and(|r| r.numap.kind == "thread"),
            };
            on_threads && p.worker.iter().any(|c| is_plugin_function(&c.function))
        })
        .map(|p| p.name.clone())
        .collect()
}

/// Whether `function` belongs to a loaded plugin.
fn is_plugin_function(function: &str) -> bool {
    papy_core::registry::lookup(function).is_ok_and(|f| {
        f.name
            .split('.')
            .next()
            .is_some_and(|plugin| papy_plugins::plugin(plugin).is_some())
    })
}

/// The functions the isolated pipers call (declared to their workers).
fn isolated_functions(f: &PipelineFile, isolated: &[String]) -> Vec<String> {
    let mut out: Vec<String> = f
        .pipers
        .iter()
        .filter(|p| isolated.contains(&p.name))
        .flat_map(|p| p.worker.iter())
        .filter_map(|c| papy_core::registry::lookup(&c.function).ok())
        .map(|func| func.name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The full names of the functions the pipers on resource `name` call
/// (names this program does not hold are kept as written).
fn functions_on(f: &PipelineFile, name: &str) -> Vec<String> {
    let mut out: Vec<String> = f
        .pipers
        .iter()
        .filter(|p| p.resource.as_deref() == Some(name))
        .flat_map(|p| p.worker.iter())
        .map(|c| {
            papy_core::registry::lookup(&c.function).map_or_else(
                |_| papy_core::registry::normalise(&c.function),
                |func| func.name.clone(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Validates a loaded file and builds its Dagger.
///
/// # Errors
/// [`ConfigError::Invalid`] with every problem, or a build error.
pub fn dagger_of_loaded(l: &Loaded, ctx: &BuildContext<'_>) -> Result<Dagger> {
    let problems: Vec<Problem> = validate(l);
    if !problems.is_empty() {
        return Err(l.invalid(problems));
    }
    let ctx = BuildContext {
        worker_command: ctx.worker_command,
        functions: ctx.functions.clone(),
        dir: ctx.dir.or(Some(&l.dir)),
    };
    dagger_of(&l.file, &ctx)
}
