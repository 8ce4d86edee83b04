//! Reading a [`SchedulerConfig`] from TOML, JSON, APScheduler's flat dictionary and the
//! environment, with errors that name the field as the source spells it.

use super::*;

pub(super) fn invalid(field: &str, value: &Value, expected: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("invalid value for '{field}': {}: {expected}", show(value)),
    )
}

pub(super) fn toml_to_json(field: &str, v: toml::Value) -> Result<Value, Error> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("invalid value for '{field}': {f}: not a finite number"),
                ))
            }
        },
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|v| toml_to_json(field, v))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => {
            let mut map = Map::new();
            for (k, v) in t {
                let f = if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                };
                let v = toml_to_json(&f, v)?;
                map.insert(k, v);
            }
            Value::Object(map)
        }
    })
}

/// Sets `value` at `path` in `tree`, merging tables; `key` names the source key in
/// errors.
pub(super) fn insert_path(
    tree: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    key: &str,
) -> Result<(), Error> {
    let Some((last, parents)) = path.split_last() else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid configuration key '{key}': empty"),
        ));
    };
    if path.iter().any(|p| p.is_empty()) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid configuration key '{key}' (value {}): empty name between separators",
                show(&value)
            ),
        ));
    }
    let mut node = tree;
    for p in parents {
        let entry = node
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(m) => node = m,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                    "conflicting configuration key '{key}' (value {}): '{p}' is already set to {}",
                    show(&value),
                    show(other)
                ),
                ))
            }
        }
    }
    match (node.get_mut(last.as_str()), value) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                insert_path(existing, std::slice::from_ref(&k), v, &format!("{key}.{k}"))?;
            }
            Ok(())
        }
        (Some(existing), value) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "conflicting configuration key '{key}': given both as {} and as {}",
                show(existing),
                show(&value)
            ),
        )),
        (None, value) => {
            node.insert(last.clone(), value);
            Ok(())
        }
    }
}

impl SchedulerConfig {
    /// An empty configuration (every setting left to its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the timezone.
    pub fn with_timezone(mut self, tz: Tz) -> Self {
        self.timezone = Some(tz);
        self
    }

    /// Sets every job default.
    pub fn with_job_defaults(mut self, defaults: JobDefaults) -> Self {
        self.job_defaults = defaults.into();
        self
    }

    /// Adds (or replaces) a job store.
    pub fn with_jobstore(mut self, alias: impl Into<String>, store: ComponentConfig) -> Self {
        self.jobstores.insert(alias.into(), store);
        self
    }

    /// Adds (or replaces) an executor.
    pub fn with_executor(mut self, alias: impl Into<String>, executor: ComponentConfig) -> Self {
        self.executors.insert(alias.into(), executor);
        self
    }

    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.timezone.is_none()
            && self.job_defaults.is_empty()
            && self.jobstores.is_empty()
            && self.executors.is_empty()
    }

    /// Layers `other` over this configuration: its timezone and job defaults replace
    /// those given here; its components replace those with the same alias (whole: give
    /// the `type` again when overriding an option). Use it to let the environment
    /// override a file.
    pub fn merge(&mut self, other: SchedulerConfig) {
        if other.timezone.is_some() {
            self.timezone = other.timezone;
        }
        self.job_defaults.merge(other.job_defaults);
        self.jobstores.extend(other.jobstores);
        self.executors.extend(other.executors);
    }

    /// [`merge`](Self::merge), by value.
    pub fn merged(mut self, other: SchedulerConfig) -> Self {
        self.merge(other);
        self
    }

    /// Reads the nested form from TOML text.
    ///
    /// # Errors
    /// `InvalidInput` for TOML syntax errors and for bad settings (naming the key and
    /// the value).
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid TOML configuration: {}", e.to_string().trim()),
            )
            .with_source(e)
        })?;
        let value = toml_to_json("", toml::Value::Table(table))?;
        Self::from_value(&value)
    }

    /// Reads JSON text: the nested form, or APScheduler's flat form whose keys start with
    /// `apscheduler.` (both may be mixed; here every key must be known).
    ///
    /// # Errors
    /// `InvalidInput` for JSON syntax errors and for bad settings.
    pub fn from_json_str(text: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid JSON configuration: {e}"),
            )
            .with_source(e)
        })?;
        Self::from_value(&value)
    }

    /// Reads a file: TOML when its name ends in `.toml`, JSON when in `.json`.
    ///
    /// # Errors
    /// `NotFound`/`Other` when the file cannot be read, `InvalidInput` for another
    /// extension or bad content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, Error> = match ext.as_deref() {
            Some("toml") => Self::from_toml_str,
            Some("json") => Self::from_json_str,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "invalid configuration file '{}': expected a .toml or .json file",
                        path.display()
                    ),
                ))
            }
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Other
            };
            Error::new(
                kind,
                format!("cannot read configuration file '{}': {e}", path.display()),
            )
            .with_source(e)
        })?;
        parse(&text).map_err(|e| {
            let kind = e.kind();
            Error::new(kind, format!("{}: {}", path.display(), e.message())).with_source(e)
        })
    }

    /// Reads a JSON value: an object in the nested form, where keys starting with
    /// `apscheduler.` are also accepted as flat keys.
    ///
    /// # Errors
    /// `InvalidInput` naming the key and the value.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let Value::Object(root) = value else {
            return Err(invalid(
                "configuration",
                value,
                "expected a table (an object) of settings",
            ));
        };
        let all_flat = !root.is_empty() && root.keys().all(|k| k.starts_with(FLAT_PREFIX));
        let mut tree = Map::new();
        for (key, v) in root {
            let path: Vec<String> = match key.strip_prefix(FLAT_PREFIX) {
                Some(rest) => rest.split('.').map(str::to_owned).collect(),
                None => vec![key.clone()],
            };
            insert_path(&mut tree, &path, v.clone(), key)?;
        }
        Self::from_tree(
            tree,
            if all_flat {
                Naming::Flat
            } else {
                Naming::Nested
            },
        )
    }

    /// Reads APScheduler's flat configuration dictionary (`BackgroundScheduler({...})`):
    /// keys starting with `apscheduler.` name the nested path with dots; other keys are
    /// ignored, as in APScheduler.
    ///
    /// ```
    /// use apscheduler_engine::SchedulerConfig;
    /// use serde_json::json;
    ///
    /// let config = SchedulerConfig::from_flat([
    ///     ("apscheduler.jobstores.default", json!({"type": "memory"})),
    ///     ("apscheduler.job_defaults.coalesce", json!("false")),
    ///     ("apscheduler.timezone", json!("UTC")),
    ///     ("sqlalchemy.url", json!("ignored: not an apscheduler key")),
    /// ]).unwrap();
    /// assert_eq!(config.job_defaults.coalesce, Some(false));
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` naming the key and the value.
    pub fn from_flat<I, K>(entries: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, Value)>,
        K: AsRef<str>,
    {
        let mut tree = Map::new();
        for (key, value) in entries {
            let key = key.as_ref();
            let Some(rest) = key.strip_prefix(FLAT_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
            insert_path(&mut tree, &path, value, key)?;
        }
        Self::from_tree(tree, Naming::Flat)
    }

    /// Reads configuration variables (the `APSCHEDULER_` prefix and `__` between levels,
    /// see [`SchedulerConfig`]) from any list of name/value pairs; names without the
    /// prefix are ignored.
    ///
    /// ```
    /// use apscheduler_engine::SchedulerConfig;
    ///
    /// let config = SchedulerConfig::from_env_vars([
    ///     ("APSCHEDULER_TIMEZONE", "UTC"),
    ///     ("APSCHEDULER_JOB_DEFAULTS__MAX_INSTANCES", "3"),
    ///     ("APSCHEDULER_EXECUTORS__DEFAULT__TYPE", "threadpool"),
    ///     ("APSCHEDULER_EXECUTORS__DEFAULT__MAX_WORKERS", "20"),
    ///     ("HOME", "/root"),
    /// ]).unwrap();
    /// assert_eq!(config.executors["default"].type_name(), "threadpool");
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` naming the variable and the value.
    pub fn from_env_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut tree = Map::new();
        for (name, value) in vars {
            let name = name.as_ref();
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            insert_path(
                &mut tree,
                &path,
                Value::String(value.as_ref().to_owned()),
                name,
            )?;
        }
        Self::from_tree(tree, Naming::Env)
    }

    /// Reads the configuration variables of this process's environment
    /// ([`from_env_vars`](Self::from_env_vars) over `std::env::vars_os`).
    ///
    /// # Errors
    /// `InvalidInput` naming the variable and the value; also for an `APSCHEDULER_`
    /// variable whose name or value is not Unicode.
    pub fn from_env() -> Result<Self, Error> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name_str) = name.to_str() else {
                continue;
            };
            if !name_str.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value.into_string().map_err(|v| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("invalid value for '{name_str}': {v:?}: not valid Unicode"),
                )
            })?;
            vars.push((name_str.to_owned(), value));
        }
        Self::from_env_vars(vars)
    }

    /// The nested form as JSON (what [`from_value`](Self::from_value) reads back).
    pub fn to_value(&self) -> Value {
        let mut root = Map::new();
        if let Some(tz) = self.timezone {
            root.insert("timezone".into(), Value::String(tz.name().to_owned()));
        }
        let mut jd = Map::new();
        if let Some(c) = self.job_defaults.coalesce {
            jd.insert("coalesce".into(), Value::Bool(c));
        }
        if let Some(m) = self.job_defaults.max_instances {
            jd.insert("max_instances".into(), Value::from(m));
        }
        if let Some(g) = self.job_defaults.misfire_grace_time {
            jd.insert(
                "misfire_grace_time".into(),
                g.map_or(Value::Null, |d| {
                    serde_json::Number::from_f64(d.as_secs_f64()).map_or(Value::Null, Value::Number)
                }),
            );
        }
        if let Some(r) = &self.job_defaults.retry {
            jd.insert(
                "retry".into(),
                r.as_ref()
                    .and_then(|p| serde_json::to_value(p).ok())
                    .unwrap_or(Value::Null),
            );
        }
        if !jd.is_empty() {
            root.insert("job_defaults".into(), Value::Object(jd));
        }
        for (key, components) in [
            ("jobstores", &self.jobstores),
            ("executors", &self.executors),
        ] {
            if !components.is_empty() {
                let map = components
                    .iter()
                    .map(|(a, c)| (a.clone(), c.to_value()))
                    .collect();
                root.insert(key.into(), Value::Object(map));
            }
        }
        Value::Object(root)
    }

    fn from_tree(tree: Map<String, Value>, naming: Naming) -> Result<Self, Error> {
        let mut config = SchedulerConfig::default();
        for (key, value) in tree {
            match key.as_str() {
                "timezone" => config.timezone = parse_timezone(&naming.name(&["timezone"]), &value)?,
                "job_defaults" => config.job_defaults = parse_job_defaults(&value, naming)?,
                "jobstores" => config.jobstores = parse_components(ComponentKind::JobStore, &key, &value, naming)?,
                "executors" => config.executors = parse_components(ComponentKind::Executor, &key, &value, naming)?,
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "unknown configuration key '{}' (value {}): expected timezone, job_defaults, jobstores or executors",
                            naming.name(&[&key]),
                            show(&value)
                        ),
                    ))
                }
            }
        }
        Ok(config)
    }
}

pub(super) fn parse_timezone(field: &str, value: &Value) -> Result<Option<Tz>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => s.trim().parse::<Tz>().map(Some).map_err(|_| {
            invalid(
                field,
                value,
                "not a known IANA timezone name (such as 'UTC' or 'Europe/Helsinki')",
            )
        }),
        _ => Err(invalid(field, value, "expected an IANA timezone name")),
    }
}

pub(super) fn parse_job_defaults(
    value: &Value,
    naming: Naming,
) -> Result<JobDefaultsConfig, Error> {
    let Value::Object(map) = value else {
        return Err(invalid(
            &naming.name(&["job_defaults"]),
            value,
            "expected a table with coalesce, max_instances, misfire_grace_time, retry",
        ));
    };
    let mut out = JobDefaultsConfig::default();
    for (key, v) in map {
        let field = naming.name(&["job_defaults", key]);
        match key.as_str() {
            "coalesce" => {
                out.coalesce = Some(parse_bool(v).ok_or_else(|| {
                    invalid(&field, v, "expected a boolean (true/false, yes/no, on/off, 1/0)")
                })?)
            }
            "max_instances" => {
                let n = parse_u64(v)
                    .filter(|n| *n >= 1)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| invalid(&field, v, "expected a whole number of at least 1"))?;
                out.max_instances = Some(n);
            }
            "retry" => out.retry = Some(parse_retry(&field, v)?),
            "misfire_grace_time" => {
                let always = matches!(v, Value::String(s) if matches!(s.trim().to_ascii_lowercase().as_str(), "none" | "null"));
                out.misfire_grace_time = Some(if always {
                    None
                } else {
                    grace_from_json(&field, v)?
                });
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "unknown configuration key '{field}' (value {}): expected coalesce, max_instances, misfire_grace_time or retry",
                        show(v)
                    ),
                ))
            }
        }
    }
    Ok(out)
}

/// `job_defaults.retry`: a table `{attempts, delay, backoff, max_delay, jitter, on,
/// exit_codes}` (delays in seconds), its JSON text (flat sources: environment variables,
/// INI), or null / `"none"` for no retries.
fn parse_retry(field: &str, v: &Value) -> Result<Option<RetryPolicy>, Error> {
    let parsed;
    let v = match v {
        Value::Null => return Ok(None),
        Value::String(s) if matches!(s.trim().to_ascii_lowercase().as_str(), "none" | "null") => {
            return Ok(None)
        }
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| invalid(field, v, &format!("expected a retry table ({e})")))?;
            &parsed
        }
        other => other,
    };
    let policy: RetryPolicy = serde_json::from_value(v.clone()).map_err(|e| {
        invalid(
            field,
            v,
            &format!(
                "expected {{attempts, delay, backoff, max_delay, jitter, on, exit_codes}} ({e})"
            ),
        )
    })?;
    policy
        .validate()
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("{field}: {}", e.message())))?;
    Ok(Some(policy))
}

pub(super) fn parse_components(
    kind: ComponentKind,
    key: &str,
    value: &Value,
    naming: Naming,
) -> Result<BTreeMap<String, ComponentConfig>, Error> {
    let Value::Object(map) = value else {
        return Err(invalid(
            &naming.name(&[key]),
            value,
            &format!("expected a table of {}s by alias", kind),
        ));
    };
    let mut out = BTreeMap::new();
    for (alias, v) in map {
        let field = naming.name(&[key, alias]);
        if alias.trim().is_empty() {
            return Err(invalid(
                &field,
                v,
                &format!("{kind} alias must not be empty"),
            ));
        }
        let Value::Object(options) = v else {
            return Err(invalid(
                &field,
                v,
                "expected a table with 'type' (or 'class') and options",
            ));
        };
        let mut type_name = None;
        let mut component_options = BTreeMap::new();
        for (k, ov) in options {
            match k.as_str() {
                "type" | "class" => {
                    let Value::String(s) = ov else {
                        return Err(invalid(
                            &naming.name(&[key, alias, k]),
                            ov,
                            "expected a type name",
                        ));
                    };
                    if s.trim().is_empty() {
                        return Err(invalid(
                            &naming.name(&[key, alias, k]),
                            ov,
                            "must not be empty",
                        ));
                    }
                    if let Some((other, _)) = &type_name {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "{} ({field}): give either 'type' or 'class', not both ('{other}' and '{k}' = {})",
                                describe(kind, alias),
                                show(ov)
                            ),
                        ));
                    }
                    type_name = Some((k.clone(), s.clone()));
                }
                _ => {
                    component_options.insert(k.clone(), ov.clone());
                }
            }
        }
        let Some((_, type_name)) = type_name else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} ({field}) = {}: either 'type' or 'class' must be given",
                    describe(kind, alias),
                    show(v)
                ),
            ));
        };
        let component = component_options
            .into_iter()
            .fold(ComponentConfig::new(type_name), |c, (k, v)| c.option(k, v));
        out.insert(alias.clone(), component);
    }
    Ok(out)
}
