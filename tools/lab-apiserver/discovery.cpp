#include "discovery.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace knp::lab {

namespace {

json::array verbsFor(const ResourceType& rt) {
    json::array v{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
    if (rt.group.empty() && rt.plural == "namespaces") v.erase(v.begin() + 2);  // no deletecollection
    return v;
}

json::array strings(const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.push_back(json::string(s));
    return a;
}

json::object groupVersion(std::string_view group, std::string_view version) {
    return json::object{{"groupVersion", fmt::format("{}/{}", group, version)}, {"version", version}};
}

std::string reversedGroup(std::string_view group) {
    auto parts = splitString(group, '.');
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += (out.empty() ? "" : ".") + std::string(*it);
    return out;
}

// The OpenAPI definition name the real server uses for a kind.
std::string definitionName(const ResourceType& rt, std::string_view kind) {
    if (rt.group.empty()) return fmt::format("io.k8s.api.core.{}.{}", rt.version, kind);
    if (rt.group.ends_with(".k8s.io") && rt.group.find("policy.networking") == std::string::npos)
        return fmt::format("io.k8s.api.{}.{}.{}", rt.group.substr(0, rt.group.size() - 7), rt.version, kind);
    return fmt::format("{}.{}.{}", reversedGroup(rt.group), rt.version, kind);
}

json::object schemaRef(std::string_view name) {
    return json::object{{"$ref", fmt::format("#/components/schemas/{}", name)}};
}

json::object queryParam(std::string_view name, std::string_view description) {
    return json::object{{"name", name},
                        {"in", "query"},
                        {"description", description},
                        {"schema", json::object{{"type", "string"}, {"uniqueItems", true}}}};
}

json::object pathParam(std::string_view name) {
    return json::object{{"name", name},
                        {"in", "path"},
                        {"description", fmt::format("{} of the resource", name)},
                        {"required", true},
                        {"schema", json::object{{"type", "string"}, {"uniqueItems", true}}}};
}

json::array writeParams(bool patch) {
    json::array p{queryParam("dryRun", "When present, indicates that modifications should not be persisted."),
                  queryParam("fieldManager", "A name associated with the actor or entity that is making changes."),
                  queryParam("fieldValidation",
                             "Instructs the server how to handle objects in the request containing unknown or "
                             "duplicate fields: Ignore, Warn or Strict.")};
    if (patch)
        p.push_back(json::object{{"name", "force"},
                                 {"in", "query"},
                                 {"description", "Force is going to \"force\" Apply requests."},
                                 {"schema", json::object{{"type", "boolean"}, {"uniqueItems", true}}}});
    return p;
}

json::object content(const json::object& schema, std::initializer_list<std::string_view> types) {
    json::object c;
    for (auto t : types) c[t] = json::object{{"schema", schema}};
    return c;
}

json::object operation(const ResourceType& rt, std::string_view id, std::string_view action, json::array params,
                       std::string_view responseDef, std::optional<json::object> body) {
    json::object gvk{{"group", rt.group}, {"kind", rt.kind}, {"version", rt.version}};
    json::object op{{"description", fmt::format("{} {}", action, rt.kind)},
                    {"operationId", id},
                    {"parameters", std::move(params)},
                    {"responses",
                     json::object{{"200", json::object{{"description", "OK"},
                                                       {"content", content(schemaRef(responseDef),
                                                                           {"application/json", "application/yaml"})}}},
                                  {"401", json::object{{"description", "Unauthorized"}}}}},
                    {"x-kubernetes-action", action},
                    {"x-kubernetes-group-version-kind", std::move(gvk)}};
    if (body) op["requestBody"] = json::object{{"content", std::move(*body)}, {"required", true}};
    return op;
}

json::object kindSchema(const ResourceType& rt, bool list) {
    json::object props{{"apiVersion", json::object{{"type", "string"}}}, {"kind", json::object{{"type", "string"}}}};
    if (list) {
        props["items"] = json::object{{"type", "array"}, {"items", schemaRef(definitionName(rt, rt.kind))}};
        props["metadata"] = schemaRef("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta");
    } else {
        props["metadata"] = schemaRef("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        for (const char* f : {"spec", "status"})
            props[f] = json::object{{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
    }
    json::object s{{"type", "object"},
                   {"description", fmt::format("{}{} (the lab server keeps no schema: any spec is accepted)", rt.kind,
                                               list ? "List" : "")},
                   {"properties", std::move(props)},
                   {"x-kubernetes-group-version-kind",
                    json::array{json::object{
                        {"group", rt.group}, {"kind", list ? rt.kind + "List" : rt.kind}, {"version", rt.version}}}}};
    if (list) s["required"] = json::array{"items"};
    return s;
}

json::object metaSchemas() {
    json::object stringMap{{"type", "object"}, {"additionalProperties", json::object{{"type", "string"}}}};
    json::object meta{
        {"type", "object"},
        {"properties",
         json::object{
             {"name", json::object{{"type", "string"}}},
             {"generateName", json::object{{"type", "string"}}},
             {"namespace", json::object{{"type", "string"}}},
             {"uid", json::object{{"type", "string"}}},
             {"resourceVersion", json::object{{"type", "string"}}},
             {"generation", json::object{{"type", "integer"}, {"format", "int64"}}},
             {"creationTimestamp", json::object{{"type", "string"}, {"format", "date-time"}}},
             {"deletionTimestamp", json::object{{"type", "string"}, {"format", "date-time"}}},
             {"labels", stringMap},
             {"annotations", stringMap},
             {"finalizers", json::object{{"type", "array"}, {"items", json::object{{"type", "string"}}}}},
             {"ownerReferences", json::object{{"type", "array"}, {"items", json::object{{"type", "object"}}}}},
             {"managedFields", json::object{{"type", "array"}, {"items", json::object{{"type", "object"}}}}}}}};
    json::object listMeta{{"type", "object"},
                          {"properties", json::object{{"continue", json::object{{"type", "string"}}},
                                                      {"remainingItemCount", json::object{{"type", "integer"}}},
                                                      {"resourceVersion", json::object{{"type", "string"}}}}}};
    json::object loose{{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
    return json::object{{"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", std::move(meta)},
                        {"io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta", std::move(listMeta)},
                        {"io.k8s.apimachinery.pkg.apis.meta.v1.Patch", json::object{{"type", "object"}}},
                        {"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", loose},
                        {"io.k8s.apimachinery.pkg.apis.meta.v1.Status", loose},
                        {"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent", loose}};
}

void addPaths(json::object& paths, json::object& schemas, const ResourceType& rt) {
    std::string def = definitionName(rt, rt.kind), listDef = definitionName(rt, rt.kind + "List");
    schemas[def] = kindSchema(rt, false);
    schemas[listDef] = kindSchema(rt, true);
    std::string base = rt.basePath();
    std::string collection = rt.namespaced ? base + "/namespaces/{namespace}/" + rt.plural : base + "/" + rt.plural;
    std::string id = rt.kind;
    json::object bodySchema = schemaRef(def);
    json::object patchSchema = schemaRef("io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    json::array scope;
    if (rt.namespaced) scope.push_back(pathParam("namespace"));

    json::object listParams;
    json::array lp{
        queryParam("labelSelector", "A selector to restrict the list of returned objects by their labels."),
        queryParam("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
        queryParam("resourceVersion",
                   "resourceVersion sets a constraint on what resource versions a request may be served from."),
        queryParam("resourceVersionMatch",
                   "resourceVersionMatch determines how resourceVersion is applied to list calls."),
        queryParam("limit", "limit is a maximum number of responses to return for a list call."),
        queryParam("continue", "The continue option should be set when retrieving more results from the server."),
        queryParam("watch", "Watch for changes to the described resources."),
        queryParam("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        queryParam("timeoutSeconds", "Timeout for the list/watch call.")};
    paths[collection] =
        json::object{{"parameters", scope},
                     {"get", operation(rt, "list" + id, "list", lp, listDef, std::nullopt)},
                     {"post", operation(rt, "create" + id, "post", writeParams(false), def,
                                        content(bodySchema, {"application/json", "application/yaml"}))}};
    json::array itemScope = scope;
    itemScope.push_back(pathParam("name"));
    json::object patchBody = content(
        patchSchema, {"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"});
    paths[collection + "/{name}"] = json::object{
        {"parameters", itemScope},
        {"get", operation(rt, "read" + id, "get", json::array{}, def, std::nullopt)},
        {"put", operation(rt, "replace" + id, "put", writeParams(false), def,
                          content(bodySchema, {"application/json", "application/yaml"}))},
        {"patch", operation(rt, "patch" + id, "patch", writeParams(true), def, patchBody)},
        {"delete",
         operation(rt, "delete" + id, "delete", json::array{queryParam("dryRun", "dry run")},
                   "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                   content(schemaRef("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"), {"application/json"}))}};
    paths[collection + "/{name}/status"] =
        json::object{{"parameters", itemScope},
                     {"get", operation(rt, "read" + id + "Status", "get", json::array{}, def, std::nullopt)},
                     {"put", operation(rt, "replace" + id + "Status", "put", writeParams(false), def,
                                       content(bodySchema, {"application/json"}))}};
    if (rt.namespaced)
        paths[base + "/" + rt.plural] =
            json::object{{"get", operation(rt, "list" + id + "ForAllNamespaces", "list", lp, listDef, std::nullopt)}};
}

json::object discoveredResource(const ResourceType& rt) {
    json::object kind{{"group", rt.group}, {"version", rt.version}, {"kind", rt.kind}};
    json::object r{{"resource", rt.plural},
                   {"responseKind", kind},
                   {"scope", rt.namespaced ? "Namespaced" : "Cluster"},
                   {"singularResource", rt.singular},
                   {"verbs", verbsFor(rt)},
                   {"subresources", json::array{json::object{{"subresource", "status"},
                                                             {"responseKind", kind},
                                                             {"verbs", json::array{"get", "patch", "update"}}}}}};
    if (!rt.shortNames.empty()) r["shortNames"] = strings(rt.shortNames);
    if (!rt.categories.empty()) r["categories"] = strings(rt.categories);
    return r;
}

}  // namespace

json::object versionInfo(std::string_view kubeMinor) {
    return json::object{{"major", "1"},
                        {"minor", kubeMinor},
                        {"gitVersion", fmt::format("v1.{}.0-knp-lab", kubeMinor)},
                        {"gitCommit", "0000000000000000000000000000000000000000"},
                        {"gitTreeState", "clean"},
                        {"buildDate", "2025-01-01T00:00:00Z"},
                        {"goVersion", "go1.23.0"},
                        {"compiler", "gc"},
                        {"platform", "linux/amd64"}};
}

json::object apiVersions(std::string_view serverAddress) {
    return json::object{{"kind", "APIVersions"},
                        {"versions", json::array{"v1"}},
                        {"serverAddressByClientCIDRs",
                         json::array{json::object{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", serverAddress}}}}};
}

std::optional<json::object> apiGroup(const Registry& reg, std::string_view group) {
    for (const auto& g : reg.visibleGroups()) {
        if (g.name != group) continue;
        json::array versions;
        for (const auto& v : g.versions) versions.push_back(groupVersion(g.name, v));
        return json::object{{"kind", "APIGroup"},
                            {"apiVersion", "v1"},
                            {"name", g.name},
                            {"versions", std::move(versions)},
                            {"preferredVersion", groupVersion(g.name, g.versions.front())}};
    }
    return std::nullopt;
}

json::object apiGroupList(const Registry& reg) {
    json::array groups;
    for (const auto& g : reg.visibleGroups()) {
        json::object ag = *apiGroup(reg, g.name);
        ag.erase("kind");
        ag.erase("apiVersion");
        groups.push_back(std::move(ag));
    }
    return json::object{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}};
}

std::optional<json::object> apiResourceList(const Registry& reg, std::string_view group, std::string_view version) {
    if (!reg.visible(group, version)) return std::nullopt;
    json::array resources;
    for (const auto& rt : reg.all()) {
        if (rt.group != group || rt.version != version || rt.hidden) continue;
        json::object r{{"name", rt.plural},
                       {"singularName", rt.singular},
                       {"namespaced", rt.namespaced},
                       {"kind", rt.kind},
                       {"verbs", verbsFor(rt)}};
        if (!rt.shortNames.empty()) r["shortNames"] = strings(rt.shortNames);
        if (!rt.categories.empty()) r["categories"] = strings(rt.categories);
        resources.push_back(std::move(r));
        resources.push_back(json::object{{"name", rt.plural + "/status"},
                                         {"singularName", ""},
                                         {"namespaced", rt.namespaced},
                                         {"kind", rt.kind},
                                         {"verbs", json::array{"get", "patch", "update"}}});
    }
    std::string gv = group.empty() ? std::string(version) : fmt::format("{}/{}", group, version);
    return json::object{
        {"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", gv}, {"resources", std::move(resources)}};
}

json::object aggregatedDiscovery(const Registry& reg, bool core, std::string_view discoveryVersion) {
    json::array items;
    auto versionEntry = [&](std::string_view group, std::string_view version) {
        json::array resources;
        for (const auto& rt : reg.all())
            if (rt.group == group && rt.version == version && !rt.hidden) resources.push_back(discoveredResource(rt));
        return json::object{{"version", version}, {"resources", std::move(resources)}, {"freshness", "Current"}};
    };
    if (core) {
        items.push_back(json::object{{"metadata", json::object{{"creationTimestamp", nullptr}}},
                                     {"versions", json::array{versionEntry("", "v1")}}});
    } else {
        for (const auto& g : reg.visibleGroups()) {
            json::array versions;
            for (const auto& v : g.versions) versions.push_back(versionEntry(g.name, v));
            items.push_back(json::object{{"metadata", json::object{{"name", g.name}, {"creationTimestamp", nullptr}}},
                                         {"versions", std::move(versions)}});
        }
    }
    return json::object{{"kind", "APIGroupDiscoveryList"},
                        {"apiVersion", fmt::format("apidiscovery.k8s.io/{}", discoveryVersion)},
                        {"metadata", json::object{}},
                        {"items", std::move(items)}};
}

std::optional<json::object> openapiV3Document(const Registry& reg, std::string_view group, std::string_view version) {
    if (!reg.visible(group, version)) return std::nullopt;
    json::object paths, schemas = metaSchemas();
    for (const auto& rt : reg.all())
        if (rt.group == group && rt.version == version && !rt.hidden) addPaths(paths, schemas, rt);
    return json::object{{"openapi", "3.0.0"},
                        {"info", json::object{{"title", "Kubernetes"}, {"version", "knp-lab"}}},
                        {"paths", std::move(paths)},
                        {"components", json::object{{"schemas", std::move(schemas)}}}};
}

std::string contentHash(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02X}", md[i]);
    return out;
}

json::object openapiV3Index(const Registry& reg) {
    json::object paths;
    auto add = [&](std::string_view group, std::string_view version) {
        auto doc = openapiV3Document(reg, group, version);
        if (!doc) return;
        std::string key = group.empty() ? fmt::format("api/{}", version) : fmt::format("apis/{}/{}", group, version);
        paths[key] = json::object{
            {"serverRelativeURL", fmt::format("/openapi/v3/{}?hash={}", key, contentHash(json::serialize(*doc)))}};
    };
    add("", "v1");
    for (const auto& g : reg.visibleGroups())
        for (const auto& v : g.versions) add(g.name, v);
    return json::object{{"paths", std::move(paths)}};
}

std::string openapiV2(std::string_view kubeMinor, bool protobuf) {
    std::string version = fmt::format("v1.{}.0", kubeMinor);
    if (!protobuf)
        return json::serialize(json::object{{"swagger", "2.0"},
                                            {"info", json::object{{"title", "Kubernetes"}, {"version", version}}},
                                            {"paths", json::object{}},
                                            {"definitions", json::object{}}});
    // openapi_v2.Document{swagger: "2.0", info: {title, version}} in protobuf wire format:
    // field 1 (string), field 2 (message Info{1: title, 2: version}).
    auto field = [](int number, std::string_view bytes) {
        std::string out;
        out += static_cast<char>((number << 3) | 2);
        out += static_cast<char>(bytes.size());  // every length here is < 128
        out += bytes;
        return out;
    };
    return field(1, "2.0") + field(2, field(1, "Kubernetes") + field(2, version));
}

}  // namespace knp::lab
