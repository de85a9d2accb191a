//! The model of a Dagger (what [`PlumberFile::save`](crate::PlumberFile::save)
//! writes), and a model as text.

use papy_core::Dagger;

use crate::error::{ConfigError, Result};
use crate::model::{CallSpec, NuMapSettings, PipelineFile, PiperSpec, Resource};

fn toml_of(v: &papy_core::Value, what: &str) -> Result<toml::Value> {
    toml::Value::try_from(v)
        .map_err(|e| ConfigError::NotSaveable(format!("{what}: cannot be written as TOML: {e}")))
}

/// The file describing a Dagger (resources and pipers; inputs and outputs
/// are not part of a Dagger and are left empty).
///
/// # Errors
/// [`ConfigError::NotSaveable`]: a closure in a worker chain, a pool a
/// file cannot describe (a mixed pool, a custom pool), or an argument
/// TOML cannot hold (null in a raw function's arguments).
pub fn file_of(d: &Dagger) -> Result<PipelineFile> {
    let mut f = PipelineFile::default();
    let mut numaps: Vec<papy_core::NuMap> = Vec::new();
    let plugins = papy_plugins::plugins();
    for p in d.order() {
        let mut resource = None;
        if let Some(m) = p.numap() {
            add_resource(&mut f, &mut numaps, m)?;
            resource = Some(m.name().to_string());
        }
        let mut worker = Vec::new();
        for s in p.worker().steps() {
            worker.push(call_of(&mut f, p.name(), s, &plugins)?);
        }
        let inputs = d
            .upstream(p.name())?
            .iter()
            .map(|u| u.name().to_string())
            .collect();
        f.pipers.push(PiperSpec {
            name: p.name().to_string(),
            resource,
            inputs,
            options: p.options().clone(),
            worker,
        });
    }
    Ok(f)
}

/// Adds the resource of NuMap `m` to `f` (once: `numaps` holds those
/// added).
fn add_resource(
    f: &mut PipelineFile,
    numaps: &mut Vec<papy_core::NuMap>,
    m: &papy_core::NuMap,
) -> Result<()> {
    if let Some(other) = numaps.iter().find(|o| o.name() == m.name()) {
        if !other.same(m) {
            return Err(ConfigError::NotSaveable(format!(
                "two different NuMaps are named `{}`; a pipeline file names each resource once",
                m.name()
            )));
        }
    } else {
        numaps.push(m.clone());
        let (kind, settings) = m.pool_settings().ok_or_else(|| {
            ConfigError::NotSaveable(format!(
                "resource `{}` runs on a pool of kind `{}`, which a pipeline file cannot describe",
                m.name(),
                m.kind()
            ))
        })?;
        let settings = match toml_of(&settings, &format!("resource `{}`", m.name()))? {
            toml::Value::Table(t) => t,
            _ => toml::Table::new(),
        };
        f.resources.insert(
            m.name().to_string(),
            Resource {
                numap: NuMapSettings {
                    kind: kind.to_string(),
                    stride: m.fixed_stride(),
                    buffer: m.buffer(),
                    ordered: m.ordered(),
                },
                settings,
            },
        );
    }
    Ok(())
}

/// The call of step `s` of piper `piper`'s chain; a plugin's function adds
/// the plugin (and its folder) to `f`.
fn call_of(
    f: &mut PipelineFile,
    piper: &str,
    s: &papy_core::worker::Step,
    plugins: &[std::sync::Arc<papy_plugins::Plugin>],
) -> Result<CallSpec> {
    let func = s.function();
    if !func.portable {
        return Err(ConfigError::NotSaveable(format!(
            "piper `{}`: `{}` is a closure (only registered functions have a name to save)",
            piper, func.name
        )));
    }
    // A plugin's function: the saved file loads the plugin.
    if let Some(plugin) = plugins
        .iter()
        .find(|pl| pl.functions().contains(&func.name))
    {
        if !f.plugins.load.contains(&plugin.name().to_string()) {
            f.plugins.load.push(plugin.name().to_string());
        }
        if let Some(dir) = plugin.path().parent() {
            let dir = dir.display().to_string();
            if !f.plugins.paths.contains(&dir) {
                f.plugins.paths.push(dir);
            }
        }
    }
    let mut call = CallSpec::named(func.name.clone());
    match &func.params {
        Some(params) => {
            for (param, v) in params.iter().zip(s.args()) {
                if !v.is_null() {
                    call.kwargs.insert(
                        param.name.to_string(),
                        toml_of(v, &format!("argument `{}` of `{}`", param.name, func.name))?,
                    );
                }
            }
        }
        None => {
            for v in s.args() {
                call.args
                    .push(toml_of(v, &format!("an argument of `{}`", func.name))?);
            }
        }
    }
    Ok(call)
}

/// A model as pipeline file text.
///
/// # Errors
/// [`ConfigError::NotSaveable`] when TOML cannot hold a value.
pub fn to_text(f: &PipelineFile) -> Result<String> {
    let mut v = toml::Value::try_from(f).map_err(|e| ConfigError::NotSaveable(e.to_string()))?;
    escape(&mut v);
    toml::to_string(&v).map_err(|e| ConfigError::NotSaveable(e.to_string()))
}

/// Strings are saved as they are: `${` becomes `$${`, so loading the file
/// does not expand what was never a variable.
fn escape(v: &mut toml::Value) {
    match v {
        toml::Value::String(s) if s.contains("${") => *s = s.replace("${", "$${"),
        toml::Value::Array(a) => a.iter_mut().for_each(escape),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| escape(v)),
        _ => {}
    }
}
