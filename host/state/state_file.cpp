#include "state/state_file.hpp"

#include <boost/json.hpp>

#include "common/yaml_json.hpp"

namespace knp::host {

namespace json = boost::json;

namespace {

std::string str(const json::object& o, std::string_view k) {
    auto it = o.find(k);
    return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}

Status addObject(json::value v, const std::string& file, int line, std::vector<StateObject>& out) {
    json::object* o = v.if_object();
    if (o == nullptr) return makeError("{}:{}: a Kubernetes object must be a mapping", file, line);
    StateObject so;
    so.apiVersion = str(*o, "apiVersion");
    so.kind = str(*o, "kind");
    so.file = file;
    so.line = line;
    if (so.apiVersion.empty()) return makeError("{}:{}: apiVersion: missing", file, line);
    if (so.kind.empty()) return makeError("{}:{}: kind: missing", file, line);
    json::object* meta = o->contains("metadata") ? o->at("metadata").if_object() : nullptr;
    if (meta == nullptr) return makeError("{}:{}: {} metadata: missing", file, line, so.kind);
    so.name = str(*meta, "name");
    if (so.name.empty()) return makeError("{}:{}: {} metadata.name: missing", file, line, so.kind);
    so.ns = str(*meta, "namespace");
    // The watch strips managedFields before anything is stored or delivered; do the same.
    meta->erase("managedFields");
    so.object = std::move(*o);
    out.push_back(std::move(so));
    return okStatus();
}

}  // namespace

Result<std::vector<StateObject>> loadStateFile(const std::string& path) {
    auto docs = loadYamlFile(path);
    if (!docs) return std::move(docs).error();
    std::vector<StateObject> out;
    for (const YAML::Node& doc : *docs) {
        if (doc.IsNull()) continue;
        auto v = yamlToJson(doc, path);
        if (!v) return std::move(v).error();
        json::object* o = v->if_object();
        std::string kind = o != nullptr ? str(*o, "kind") : "";
        // `kubectl get -o yaml` prints a List (kind: List, or PodList and friends) with items.
        if (o != nullptr && kind.size() >= 4 && kind.compare(kind.size() - 4, 4, "List") == 0 && o->contains("items")) {
            const YAML::Node items = doc["items"];
            json::array* arr = o->at("items").if_array();
            if (arr == nullptr) return makeError("{}:{}: items: must be a list", path, yamlLine(doc));
            for (size_t i = 0; i < arr->size(); ++i) {
                int line = items && items.IsSequence() && i < items.size() ? yamlLine(items[i]) : yamlLine(doc);
                json::value item = std::move((*arr)[i]);
                // List items from `kubectl get` of one kind may omit apiVersion/kind.
                if (json::object* io = item.if_object(); io != nullptr && kind != "List") {
                    if (!io->contains("kind")) (*io)["kind"] = kind.substr(0, kind.size() - 4);
                    if (!io->contains("apiVersion") && o->contains("apiVersion"))
                        (*io)["apiVersion"] = o->at("apiVersion");
                }
                if (auto s = addObject(std::move(item), path, line, out); !s) return std::move(s).error();
            }
            continue;
        }
        if (auto s = addObject(std::move(*v), path, yamlLine(doc), out); !s) return std::move(s).error();
    }
    return out;
}

}  // namespace knp::host
