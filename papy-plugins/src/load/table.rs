//! Copying a plugin's worker table into registry [`Function`]s named
//! `plugin.worker`, each calling across the ABI.

use std::path::Path;
use std::sync::Arc;

use papy_core::registry::{Callable, Function, Param};
use papy_core::Value;

use super::call::{batch_entries, call_plugin};
use super::manifest::{array, invalid, read_str, Checked};
use crate::abi::{FreeFn, MAX_NAME_LEN, MAX_TEXT_LEN};
use crate::error::PluginError;

/// The functions of plugin `name`'s worker table.
pub(super) fn functions(
    path: &Path,
    name: &str,
    checked: Checked,
    free: FreeFn,
) -> Result<Vec<Function>, PluginError> {
    let Checked {
        manifest: m,
        mut types,
        call_batch,
    } = checked;
    let entries = array(path, "the worker table", m.workers, m.workers_len)?;
    let mut functions = Vec::with_capacity(entries.len());
    for (index, e) in entries.iter().enumerate() {
        let short = read_str(path, "a worker name", e.name, MAX_NAME_LEN)?;
        let imports = array(path, "an imports table", e.imports, e.imports_len)?
            .iter()
            .map(|s| read_str(path, "an import", *s, MAX_NAME_LEN))
            .collect::<Result<Vec<_>, _>>()?;
        let params = if e.params_len == usize::MAX {
            None
        } else {
            let ps = array(path, "a parameter table", e.params, e.params_len)?;
            let mut out = Vec::with_capacity(ps.len());
            for p in ps {
                let pname: &'static str = Box::leak(
                    read_str(path, "a parameter name", p.name, MAX_NAME_LEN)?.into_boxed_str(),
                );
                let ty: &'static str = match types.as_mut() {
                    None => "",
                    Some(t) => {
                        let s = t.next().ok_or_else(|| PluginError::InvalidManifest {
                            path: path.to_path_buf(),
                            message:
                                "the parameter type table is shorter than the parameter tables"
                                    .into(),
                        })?;
                        Box::leak(
                            read_str(path, "a parameter type", *s, MAX_TEXT_LEN)?.into_boxed_str(),
                        )
                    }
                };
                out.push(Param {
                    name: pname,
                    optional: p.optional != 0,
                    ty,
                });
            }
            Some(out)
        };
        let Some(call) = e.call else {
            return Err(invalid(
                path,
                format!("worker {index} (`{short}`) has a null call pointer"),
            ));
        };
        let (batch, packed) = batch_entries(call_batch, free, index);
        functions.push(Function {
            name: format!("{name}.{short}"),
            params,
            inputs: usize::try_from(e.inputs).ok(),
            imports,
            forgive: e.forgive != 0,
            doc: read_str(path, "a doc comment", e.doc, MAX_TEXT_LEN)?,
            portable: true,
            call: Callable::Dynamic(Arc::new(move |inbox: &[Value], args: &[Value]| {
                call_plugin(call, free, index, inbox, args)
            })),
            batch,
            packed,
        });
    }
    if types.is_some_and(|t| t.len() > 0) {
        return Err(PluginError::InvalidManifest {
            path: path.to_path_buf(),
            message: "the parameter type table is longer than the parameter tables".into(),
        });
    }
    Ok(functions)
}
