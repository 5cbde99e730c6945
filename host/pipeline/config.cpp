#include "pipeline/config.hpp"

#include <filesystem>
#include <set>

#include <boost/json/serialize.hpp>

#include "common/yaml_json.hpp"

namespace knp::host {

namespace {

Result<OnError> parseOnError(const YAML::Node& n, const std::string& file, const std::string& field) {
    if (!n.IsScalar()) return makeError("{}:{}: {}: must be one of deny, accept, next", file, yamlLine(n), field);
    const std::string& s = n.Scalar();
    if (s == "deny") return OnError::Deny;
    if (s == "accept") return OnError::Accept;
    if (s == "next") return OnError::Next;
    return makeError("{}:{}: {}: {:?} is not one of deny, accept, next", file, yamlLine(n), field, s);
}

bool isDnsLabel(std::string_view s) {
    if (s.empty() || s.size() > 63) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return s.front() != '-' && s.back() != '-';
}

// Rejects keys outside `allowed`: a typo ("onerror") must not silently fall back to a default.
Status checkKeys(const YAML::Node& map, std::initializer_list<std::string_view> allowed, const std::string& file,
                 const std::string& field) {
    for (const auto& kv : map) {
        std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            return makeError("{}:{}: {}{:?}: unknown field (expected one of: {})", file, yamlLine(kv.first),
                             field.empty() ? "" : field + ".", key, list);
        }
    }
    return okStatus();
}

Result<PipelineConfig> parseDocument(const YAML::Node& doc, PipelineConfig cfg) {
    const std::string& file = cfg.file;
    if (!doc.IsMap()) return makeError("{}:{}: the pipeline must be a YAML mapping", file, yamlLine(doc));
    if (auto s = checkKeys(doc, {"apiVersion", "kind", "defaults", "instances"}, file, ""); !s)
        return std::move(s).error();
    const YAML::Node api = doc["apiVersion"];
    if (!api || !api.IsScalar() || api.Scalar() != kPipelineApiVersion)
        return makeError("{}:{}: apiVersion: must be {:?}", file, api ? yamlLine(api) : yamlLine(doc),
                         kPipelineApiVersion);
    const YAML::Node kind = doc["kind"];
    if (!kind || !kind.IsScalar() || kind.Scalar() != kPipelineKind)
        return makeError("{}:{}: kind: must be {:?}", file, kind ? yamlLine(kind) : yamlLine(doc), kPipelineKind);

    if (const YAML::Node defaults = doc["defaults"]; defaults && !defaults.IsNull()) {
        if (!defaults.IsMap()) return makeError("{}:{}: defaults: must be a mapping", file, yamlLine(defaults));
        if (auto s = checkKeys(defaults, {"onError"}, file, "defaults"); !s) return std::move(s).error();
        if (const YAML::Node oe = defaults["onError"]) {
            auto v = parseOnError(oe, file, "defaults.onError");
            if (!v) return std::move(v).error();
            cfg.defaultOnError = *v;
        }
    }

    const YAML::Node list = doc["instances"];
    if (!list) return makeError("{}:{}: instances: missing (write `instances: []` for none)", file, yamlLine(doc));
    if (!list.IsSequence() && !list.IsNull())
        return makeError("{}:{}: instances: must be a list", file, yamlLine(list));
    std::set<std::string> names;
    size_t i = 0;
    for (const YAML::Node& item : list) {
        InstanceConfig inst;
        inst.field = fmt::format("instances[{}]", i++);
        inst.line = yamlLine(item);
        inst.onError = cfg.defaultOnError;
        const std::string& f = inst.field;
        if (!item.IsMap()) return makeError("{}:{}: {}: must be a mapping", file, inst.line, f);
        if (auto s = checkKeys(item, {"name", "library", "enabled", "onError", "config"}, file, f); !s)
            return std::move(s).error();

        const YAML::Node name = item["name"];
        if (!name) return makeError("{}:{}: {}.name: missing", file, inst.line, f);
        if (!name.IsScalar() || !isDnsLabel(name.Scalar()))
            return makeError("{}:{}: {}.name: {:?} must be a DNS label (a-z, 0-9, '-', at most 63)", file,
                             yamlLine(name), f, name.IsScalar() ? name.Scalar() : "");
        inst.name = name.Scalar();
        if (!names.insert(inst.name).second)
            return makeError("{}:{}: {}.name: duplicate instance name {:?}", file, yamlLine(name), f, inst.name);

        const YAML::Node lib = item["library"];
        if (!lib) return makeError("{}:{}: {}.library: missing", file, inst.line, f);
        if (!lib.IsScalar() || lib.Scalar().empty())
            return makeError("{}:{}: {}.library: must be a plugin name or path", file, yamlLine(lib), f);
        inst.library = lib.Scalar();
        inst.libraryLine = yamlLine(lib);

        if (const YAML::Node en = item["enabled"]) {
            if (!en.IsScalar() || (en.Scalar() != "true" && en.Scalar() != "false"))
                return makeError("{}:{}: {}.enabled: must be true or false", file, yamlLine(en), f);
            inst.enabled = en.Scalar() == "true";
        }
        if (const YAML::Node oe = item["onError"]) {
            auto v = parseOnError(oe, file, f + ".onError");
            if (!v) return std::move(v).error();
            inst.onError = *v;
        }
        if (const YAML::Node c = item["config"]; c && !c.IsNull()) {
            if (!c.IsMap()) return makeError("{}:{}: {}.config: must be a mapping", file, yamlLine(c), f);
            auto j = yamlToJson(c, file);
            if (!j) return std::move(j).error();
            inst.configJson = boost::json::serialize(*j);
            inst.config.reset(c);
        }
        cfg.instances.push_back(std::move(inst));
    }
    return cfg;
}

Result<PipelineConfig> parseDocs(Result<std::vector<YAML::Node>> docs, PipelineConfig cfg) {
    if (!docs) return std::move(docs).error();
    std::vector<YAML::Node> real;
    for (auto& d : *docs)
        if (!d.IsNull()) real.push_back(d);
    if (real.size() != 1) return makeError("{}: expected exactly one YAML document, found {}", cfg.file, real.size());
    return parseDocument(real[0], std::move(cfg));
}

}  // namespace

int PipelineConfig::lineOf(const InstanceConfig& inst, std::string_view pointer) const {
    if (!pointer.empty() && inst.config) {
        // The deepest node the pointer reaches; a missing key points at its parent.
        std::string p(pointer);
        while (true) {
            if (auto n = yamlAtPointer(inst.config, p)) return yamlLine(*n);
            size_t slash = p.rfind('/');
            if (slash == std::string::npos || p.empty()) break;
            p.resize(slash);
        }
    }
    return inst.line;
}

Result<PipelineConfig> parsePipelineFile(const std::string& path) {
    PipelineConfig cfg;
    cfg.file = path;
    cfg.dir = std::filesystem::path(path).parent_path().string();
    return parseDocs(loadYamlFile(path), std::move(cfg));
}

Result<PipelineConfig> parsePipelineText(std::string_view text, const std::string& name, const std::string& dir) {
    PipelineConfig cfg;
    cfg.file = name;
    cfg.dir = dir;
    return parseDocs(loadYamlString(text, name), std::move(cfg));
}

}  // namespace knp::host
