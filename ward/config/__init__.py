"""The ward's configuration: one strict, typed schema, validated before anything starts.

Why a package: the schema (:mod:`.schema`, one section per model, each bed's values resolved once),
the rule's parameters (:mod:`.rules`, the single definition read by the config, the store, the
dashboard and the rule), the error messages (:mod:`.errors`) and the reading of YAML and Serve
documents (:mod:`.loader`) each have their own home; import the public names from here.
"""

from ward.config.errors import ConfigError, format_validation_error
from ward.config.loader import SHIPPED_CONFIG, engine_defaults, load_ward_config, shipped_config
from ward.config.rules import (LAYER_NAMES, LIVE_RULE_FIELDS, MAX_MIN_DURATION_S, RULE_LAYERS, EffectiveRule,
                               RuleConfig, RuleError, RuleLayer, RuleOverride, RulePatch, RuleSet, effective_rule,
                               validate_rule_overrides)
from ward.config.schema import (CLINICAL_RETENTION_FLOOR_DAYS, ApiConfig, BatchConfig, BatchingConfig,
                                BedConfig, CameraActorResources, ClipConfig, DashboardConfig, DatabaseConfig,
                                DeploymentResources, IngestConfig, ModelsConfig, PoseModelConfig, ResolvedBed,
                                ResourcesConfig, RetentionConfig, RetentionPolicy, VSViGModelConfig, WardConfig,
                                WatchdogConfig, is_loopback, read_secret_file)

__all__ = [
    "CLINICAL_RETENTION_FLOOR_DAYS", "LAYER_NAMES", "SHIPPED_CONFIG", "LIVE_RULE_FIELDS", "MAX_MIN_DURATION_S",
    "RULE_LAYERS", "ApiConfig", "BatchConfig", "BatchingConfig", "BedConfig", "CameraActorResources", "ClipConfig",
    "ConfigError", "DashboardConfig", "DatabaseConfig", "DeploymentResources", "EffectiveRule", "IngestConfig",
    "ModelsConfig", "PoseModelConfig", "ResolvedBed", "ResourcesConfig", "RetentionConfig", "RetentionPolicy",
    "RuleConfig", "RuleError", "RuleLayer", "RuleOverride", "RulePatch", "RuleSet", "VSViGModelConfig",
    "WardConfig", "WatchdogConfig", "effective_rule", "engine_defaults", "format_validation_error", "is_loopback", "load_ward_config",
    "read_secret_file", "shipped_config", "validate_rule_overrides",
]
