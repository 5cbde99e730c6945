#include "tables.hpp"

#include <fmt/format.h>

#include <boost/json/array.hpp>

#include "selectors.hpp"

namespace knp::lab {

namespace {

struct Column {
    const char* name;
    const char* type;
    const char* format;
    int priority;
};

json::object columnJson(const Column& c) {
    return json::object{
        {"name", c.name}, {"type", c.type}, {"format", c.format}, {"description", c.name}, {"priority", c.priority}};
}

std::string age(const json::object& obj) {
    auto t = parseTime(metaString(obj, "creationTimestamp"));
    if (!t) return "<unknown>";
    return humanDuration(static_cast<long>(std::time(nullptr) - *t));
}

std::string str(const json::object& obj, std::string_view path, std::string_view fallback = "<none>") {
    const json::value* v = valueAtPath(obj, path);
    if (!v) return std::string(fallback);
    if (v->is_string()) return v->get_string().empty() ? std::string(fallback) : std::string(v->get_string());
    if (v->is_int64()) return std::to_string(v->get_int64());
    if (v->is_bool()) return v->get_bool() ? "true" : "false";
    return std::string(fallback);
}

std::size_t arraySize(const json::object& obj, std::string_view path) {
    const json::value* v = valueAtPath(obj, path);
    return v && v->is_array() ? v->get_array().size() : 0;
}

std::string nodeStatus(const json::object& node) {
    const json::value* conds = valueAtPath(node, "status.conditions");
    std::string s = "Unknown";
    if (conds && conds->is_array())
        for (const auto& c : conds->get_array())
            if (c.is_object() && stringAt(c.get_object(), "type") == "Ready")
                s = stringAt(c.get_object(), "status") == "True" ? "Ready" : "NotReady";
    const json::value* unsched = valueAtPath(node, "spec.unschedulable");
    if (unsched && unsched->is_bool() && unsched->get_bool()) s += ",SchedulingDisabled";
    return s;
}

std::string nodeRoles(const json::object& node) {
    std::string roles;
    const json::object* meta = metadataOf(node);
    const json::object* labels = meta ? objectAt(*meta, "labels") : nullptr;
    if (labels)
        for (const auto& kv : *labels) {
            std::string_view k = kv.key();
            if (k.starts_with("node-role.kubernetes.io/")) {
                if (!roles.empty()) roles += ',';
                roles += std::string(k.substr(24));
            }
        }
    return roles.empty() ? "<none>" : roles;
}

std::vector<Column> columnsFor(const ResourceType& rt) {
    if (rt.group.empty() && rt.plural == "namespaces")
        return {{"Name", "string", "name", 0}, {"Status", "string", "", 0}, {"Age", "string", "", 0}};
    if (rt.group.empty() && rt.plural == "nodes")
        return {{"Name", "string", "name", 0}, {"Status", "string", "", 0},  {"Roles", "string", "", 0},
                {"Age", "string", "", 0},      {"Version", "string", "", 0}, {"Internal-IP", "string", "", 1}};
    if (rt.group.empty() && rt.plural == "pods")
        return {{"Name", "string", "name", 0}, {"Ready", "string", "", 0}, {"Status", "string", "", 0},
                {"Restarts", "string", "", 0}, {"Age", "string", "", 0},   {"IP", "string", "", 1},
                {"Node", "string", "", 1}};
    if (rt.plural == "networkpolicies")
        return {{"Name", "string", "name", 0}, {"Pod-Selector", "string", "", 0}, {"Age", "string", "", 0}};
    if (rt.plural == "adminnetworkpolicies")
        return {{"Name", "string", "name", 0}, {"Priority", "string", "", 0}, {"Age", "string", "", 0}};
    if (rt.plural == "clusternetworkpolicies")
        return {{"Name", "string", "name", 0},
                {"Tier", "string", "", 0},
                {"Priority", "string", "", 0},
                {"Age", "string", "", 0}};
    return {{"Name", "string", "name", 0}, {"Age", "string", "", 0}};
}

json::array cellsFor(const ResourceType& rt, const json::object& o) {
    std::string name(metaString(o, "name"));
    if (rt.group.empty() && rt.plural == "namespaces") return {name, str(o, "status.phase", ""), age(o)};
    if (rt.group.empty() && rt.plural == "nodes") {
        std::string ip = "<none>";
        const json::value* addrs = valueAtPath(o, "status.addresses");
        if (addrs && addrs->is_array())
            for (const auto& a : addrs->get_array())
                if (a.is_object() && stringAt(a.get_object(), "type") == "InternalIP")
                    ip = std::string(stringAt(a.get_object(), "address"));
        return {name, nodeStatus(o), nodeRoles(o), age(o), str(o, "status.nodeInfo.kubeletVersion", ""), ip};
    }
    if (rt.group.empty() && rt.plural == "pods") {
        std::size_t total = arraySize(o, "spec.containers");
        std::size_t ready = 0;
        const json::value* statuses = valueAtPath(o, "status.containerStatuses");
        if (statuses && statuses->is_array())
            for (const auto& s : statuses->get_array())
                if (s.is_object()) {
                    auto r = s.get_object().find("ready");
                    if (r != s.get_object().end() && r->value().is_bool() && r->value().get_bool()) ++ready;
                }
        return {name,
                fmt::format("{}/{}", ready, total),
                str(o, "status.phase", "Unknown"),
                "0",
                age(o),
                str(o, "status.podIP"),
                str(o, "spec.nodeName")};
    }
    if (rt.plural == "networkpolicies") {
        const json::value* sel = valueAtPath(o, "spec.podSelector");
        return {name, formatLabelSelector(sel && sel->is_object() ? &sel->get_object() : nullptr), age(o)};
    }
    if (rt.plural == "adminnetworkpolicies") return {name, str(o, "spec.priority", ""), age(o)};
    if (rt.plural == "clusternetworkpolicies")
        return {name, str(o, "spec.tier", ""), str(o, "spec.priority", ""), age(o)};
    return {name, age(o)};
}

}  // namespace

std::string humanDuration(long s) {
    if (s < -1) return "<invalid>";
    if (s < 0) s = 0;
    if (s < 120) return fmt::format("{}s", s);
    long m = s / 60;
    if (m < 10) return s % 60 == 0 ? fmt::format("{}m", m) : fmt::format("{}m{}s", m, s % 60);
    if (m < 180) return fmt::format("{}m", m);
    long h = m / 60;
    if (h < 8) return m % 60 == 0 ? fmt::format("{}h", h) : fmt::format("{}h{}m", h, m % 60);
    if (h < 48) return fmt::format("{}h", h);
    if (h < 24 * 8) return h % 24 == 0 ? fmt::format("{}d", h / 24) : fmt::format("{}d{}h", h / 24, h % 24);
    if (h < 24 * 365 * 2) return fmt::format("{}d", h / 24);
    long y = h / 24 / 365;
    if (y < 8) return fmt::format("{}y{}d", y, (h / 24) % 365);
    return fmt::format("{}y", y);
}

json::object makeTable(const ResourceType& rt, const std::vector<ObjectPtr>& items, std::string_view includeObject) {
    json::array columns;
    for (const auto& c : columnsFor(rt)) columns.push_back(columnJson(c));
    json::array rows;
    for (const auto& item : items) {
        const json::object& o = item->value;
        json::object row{{"cells", cellsFor(rt, o)}};
        if (includeObject == "Object") {
            row["object"] = o;
        } else if (includeObject != "None") {
            json::object meta = metadataOf(o) ? *metadataOf(o) : json::object{};
            meta.erase("managedFields");
            row["object"] = json::object{
                {"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", std::move(meta)}};
        }
        rows.push_back(std::move(row));
    }
    return json::object{{"kind", "Table"},
                        {"apiVersion", "meta.k8s.io/v1"},
                        {"metadata", json::object{}},
                        {"columnDefinitions", std::move(columns)},
                        {"rows", std::move(rows)}};
}

}  // namespace knp::lab
