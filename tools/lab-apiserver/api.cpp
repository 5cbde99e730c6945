#include "api.hpp"

#include <algorithm>
#include <charconv>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "common/yaml_json.hpp"
#include "discovery.hpp"
#include "protobuf.hpp"
#include "tables.hpp"

namespace knp::lab {

namespace {

constexpr std::string_view kTableType = "application/json;as=Table;v=v1;g=meta.k8s.io";

Response jsonResponse(int status, const json::value& v) {
    return Response{status, "application/json", json::serialize(v), {}};
}

ApiError pathNotFound() { return ApiError{404, "NotFound", "the server could not find the requested resource", {}, 0}; }

ApiError methodNotAllowed(std::string_view method) {
    return ApiError{405,
                    "MethodNotAllowed",
                    fmt::format("the server does not allow this method on the requested resource ({})", method),
                    {},
                    0};
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string urlDecode(std::string_view s, bool plusIsSpace) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
            out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plusIsSpace) {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

std::map<std::string, std::string> parseQuery(std::string_view qs) {
    std::map<std::string, std::string> q;
    while (!qs.empty()) {
        auto amp = qs.find('&');
        std::string_view kv = qs.substr(0, amp);
        auto eq = kv.find('=');
        std::string k = urlDecode(kv.substr(0, eq), true);
        std::string v = eq == std::string_view::npos ? std::string() : urlDecode(kv.substr(eq + 1), true);
        if (!k.empty()) q.emplace(std::move(k), std::move(v));  // the first value wins
        if (amp == std::string_view::npos) break;
        qs.remove_prefix(amp + 1);
    }
    return q;
}

std::vector<std::string> splitPath(std::string_view p) {
    std::vector<std::string> segs;
    while (!p.empty()) {
        auto slash = p.find('/');
        std::string_view s = p.substr(0, slash);
        if (!s.empty()) segs.push_back(urlDecode(s, false));
        if (slash == std::string_view::npos) break;
        p.remove_prefix(slash + 1);
    }
    return segs;
}

std::string queryValue(const std::map<std::string, std::string>& q, const std::string& k) {
    auto it = q.find(k);
    return it == q.end() ? std::string() : it->second;
}

bool truthy(const std::string& v) { return v == "true" || v == "1"; }

bool wantsTable(std::string_view accept) {
    return accept.find("as=Table") != std::string_view::npos && accept.find("g=meta.k8s.io") != std::string_view::npos;
}

// The aggregated discovery version the client prefers ("v2", "v2beta1"), if it asked for one.
std::optional<std::string> aggregatedVersion(std::string_view accept) {
    while (!accept.empty()) {
        auto comma = accept.find(',');
        std::string_view range = accept.substr(0, comma);
        if (range.find("as=APIGroupDiscoveryList") != std::string_view::npos &&
            range.find("g=apidiscovery.k8s.io") != std::string_view::npos) {
            std::size_t v = range.find("v=v2");
            if (v != std::string_view::npos) {
                std::string_view rest = range.substr(v + 2);
                return std::string(rest.substr(0, rest.find(';')));
            }
        }
        if (comma == std::string_view::npos) break;
        accept.remove_prefix(comma + 1);
    }
    return std::nullopt;
}

ApiResult<json::value> parseBody(const Request& req) {
    if (req.contentType.starts_with("application/vnd.kubernetes.protobuf")) {
        auto obj = decodeProtobufObject(req.body);
        if (!obj) return ApiError{415, "UnsupportedMediaType", obj.error().message, {}, 0};
        return json::value(std::move(obj.value()));
    }
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (!ec) return v;
    bool yaml = req.contentType.find("yaml") != std::string::npos;
    if (!yaml) return badRequest(fmt::format("the body of the request was in an unknown format: {}", ec.message()));
    auto docs = host::loadYamlString(req.body, "body");
    if (!docs || docs->empty()) return badRequest(docs ? "empty YAML body" : docs.error().message);
    auto j = host::yamlToJson(docs->front(), "body");
    if (!j) return badRequest(j.error().message);
    return std::move(j.value());
}

std::string itemsJoined(const std::vector<ObjectPtr>& items) {
    std::size_t n = 0;
    for (const auto& i : items) n += i->text.size() + 1;
    std::string out;
    out.reserve(n);
    for (const auto& i : items) {
        if (!out.empty()) out += ',';
        out += i->text;
    }
    return out;
}

}  // namespace

Api::Api(Registry& registry, Store& store, WatchHub& hub, Faults& faults, Auth& auth, ApiOptions options)
    : registry_(registry), store_(store), hub_(hub), faults_(faults), auth_(auth), options_(std::move(options)) {}

Response Api::errorResponse(const ApiError& e) {
    Response r{e.code, "application/json", json::serialize(statusObject(e)), {}};
    if (e.retryAfterSeconds > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retryAfterSeconds));
    return r;
}

std::string Api::errorLine(const ApiError& e) {
    return fmt::format("{{\"type\":\"ERROR\",\"object\":{}}}\n", json::serialize(statusObject(e)));
}

std::string Api::eventLine(const WatchPlan& plan, EventType type, const ObjectPtr& object) const {
    if (plan.table)
        return fmt::format("{{\"type\":\"{}\",\"object\":{}}}\n", eventTypeName(type),
                           json::serialize(makeTable(*plan.filter.rt, {object}, plan.includeObject)));
    std::string line;
    line.reserve(object->text.size() + 40);
    line += "{\"type\":\"";
    line += eventTypeName(type);
    line += "\",\"object\":";
    line += object->text;
    line += "}\n";
    return line;
}

std::string Api::bookmarkLine(const WatchPlan& plan, bool initialEventsEnd) const {
    json::object meta{{"resourceVersion", std::to_string(store_.resourceVersion())}, {"creationTimestamp", nullptr}};
    if (initialEventsEnd) meta["annotations"] = json::object{{"k8s.io/initial-events-end", "true"}};
    json::object obj{
        {"kind", plan.filter.rt->kind}, {"apiVersion", plan.filter.rt->apiVersion()}, {"metadata", std::move(meta)}};
    return fmt::format("{{\"type\":\"BOOKMARK\",\"object\":{}}}\n", json::serialize(obj));
}

Outcome Api::handle(const Request& req) {
    std::string_view target = req.target;
    auto qmark = target.find('?');
    std::string path(target.substr(0, qmark));
    Query q = parseQuery(qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1));
    std::vector<std::string> segs = splitPath(path);

    static const ApiError kUnauthorized{401, "Unauthorized", "Unauthorized", {}, 0};
    if (!segs.empty() && segs[0] == "lab") {
        if (!auth_.allowAdmin(req.authorization)) return errorResponse(kUnauthorized);
        return handleAdmin(req, path, q);
    }
    bool health = !segs.empty() && (segs[0] == "livez" || segs[0] == "readyz" || segs[0] == "healthz");
    bool isPublic = health || path == "/version" || path == "/version/";
    if (isPublic ? !auth_.allowPublic(req.authorization) : !auth_.allowApi(req.authorization))
        return errorResponse(kUnauthorized);
    if (health) return Response{200, "text/plain; charset=utf-8", "ok", {}};
    if (req.method != "GET" && (segs.empty() || segs[0] != "api" || segs.size() < 3) &&
        (segs.empty() || segs[0] != "apis" || segs.size() < 4))
        return errorResponse(methodNotAllowed(req.method));

    if (segs.size() == 1 && segs[0] == "version") return jsonResponse(200, versionInfo(options_.kubeMinor));
    if (segs.size() == 1 && (segs[0] == "api" || segs[0] == "apis")) {
        bool core = segs[0] == "api";
        if (auto v = aggregatedVersion(req.accept)) {
            return Response{200,
                            fmt::format("application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList", *v),
                            json::serialize(aggregatedDiscovery(registry_, core, *v)),
                            {}};
        }
        return jsonResponse(200, core ? apiVersions(options_.serverAddress) : apiGroupList(registry_));
    }
    if (!segs.empty() && segs[0] == "openapi") {
        if (segs.size() == 2 && segs[1] == "v2") {
            bool pb = req.accept.find("protobuf") != std::string::npos;
            return Response{200,
                            pb ? "application/com.github.proto-openapi.spec.v2@v1.0+protobuf" : "application/json",
                            openapiV2(options_.kubeMinor, pb),
                            {}};
        }
        if (segs.size() == 2 && segs[1] == "v3") return jsonResponse(200, openapiV3Index(registry_));
        std::optional<json::object> doc;
        if (segs.size() == 4 && segs[1] == "v3" && segs[2] == "api") doc = openapiV3Document(registry_, "", segs[3]);
        if (segs.size() == 5 && segs[1] == "v3" && segs[2] == "apis")
            doc = openapiV3Document(registry_, segs[3], segs[4]);
        if (!doc) return errorResponse(pathNotFound());
        Response r = jsonResponse(200, *doc);
        // The index names each document by its content hash, so a hashed URL never changes.
        if (q.count("hash")) r.headers.emplace_back("Cache-Control", "public, immutable");
        return r;
    }
    if (segs.size() >= 2 && segs[0] == "api" && segs[1] == "v1") {
        std::vector<std::string> rest(segs.begin() + 2, segs.end());
        rest.insert(rest.begin(), {"", "v1"});
        return handleResource(req, rest, q);
    }
    if (segs.size() == 2 && segs[0] == "apis") {
        if (auto g = apiGroup(registry_, segs[1])) return jsonResponse(200, *g);
        return errorResponse(pathNotFound());
    }
    if (segs.size() >= 3 && segs[0] == "apis") return handleResource(req, {segs.begin() + 1, segs.end()}, q);
    return errorResponse(pathNotFound());
}

// segs: group, version, then the path below /api/v1 or /apis/<group>/<version>.
Outcome Api::handleResource(const Request& req, const std::vector<std::string>& segs, const Query& query) {
    const std::string& group = segs[0];
    const std::string& version = segs[1];
    std::vector<std::string> rest(segs.begin() + 2, segs.end());
    Query q = query;
    bool legacyWatch = !rest.empty() && rest[0] == "watch";
    if (legacyWatch) rest.erase(rest.begin());
    if (rest.empty()) {
        if (req.method != "GET") return errorResponse(methodNotAllowed(req.method));
        if (auto l = apiResourceList(registry_, group, version)) return jsonResponse(200, *l);
        return errorResponse(pathNotFound());
    }
    std::string ns, plural, name, sub;
    std::size_t i = 0;
    if (rest[0] == "namespaces" && rest.size() >= 3) {
        const ResourceType* candidate = registry_.find(group, version, rest[2]);
        if (!group.empty() || (candidate && candidate->namespaced)) {
            ns = rest[1];
            i = 2;
        }
    }
    plural = rest[i];
    if (rest.size() > i + 1) name = rest[i + 1];
    if (rest.size() > i + 2) sub = rest[i + 2];
    if (rest.size() > i + 3) return errorResponse(pathNotFound());
    ResourceType* rt = registry_.find(group, version, plural);
    if (!rt || rt->hidden || (!ns.empty() && !rt->namespaced) || (!sub.empty() && sub != "status"))
        return errorResponse(pathNotFound());
    bool statusOnly = sub == "status";
    if (legacyWatch) {
        q["watch"] = "true";
        if (!name.empty()) {
            std::string& fs = q["fieldSelector"];
            fs = fs.empty() ? "metadata.name=" + name : fs + ",metadata.name=" + name;
            name.clear();
        }
    }

    const std::string& m = req.method;
    bool watching = truthy(queryValue(q, "watch"));
    std::string verb = m == "GET"      ? (name.empty() ? (watching ? "watch" : "list") : "get")
                       : m == "POST"   ? "create"
                       : m == "PUT"    ? "update"
                       : m == "PATCH"  ? "patch"
                       : m == "DELETE" ? (name.empty() ? "deletecollection" : "delete")
                                       : "";
    if (verb.empty() || (name.empty() && (verb == "update" || verb == "patch")) ||
        (!name.empty() && verb == "create") || (statusOnly && verb != "get" && verb != "update" && verb != "patch"))
        return errorResponse(methodNotAllowed(m));
    if (auto e = faults_.takeError(*rt, verb)) return errorResponse(*e);

    WriteOptions opts;
    opts.dryRun = queryValue(q, "dryRun") == "All";
    opts.fieldManager = queryValue(q, "fieldManager");
    if (opts.fieldManager.empty()) opts.fieldManager = req.userAgent.substr(0, req.userAgent.find('/'));
    opts.force = truthy(queryValue(q, "force"));

    if (verb == "list") return list(req, *rt, ns, q);
    if (verb == "watch") return watch(req, *rt, ns, q);
    if (verb == "get") return object(req, *rt, store_.get(*rt, ns, name), 200, q);
    if (verb == "deletecollection") {
        ListOptions lo;
        auto labels = LabelSelector::parse(queryValue(q, "labelSelector"));
        auto fields = FieldSelector::parse(queryValue(q, "fieldSelector"), *rt);
        if (!labels) return errorResponse(badRequest(labels.error().message));
        if (!fields) return errorResponse(badRequest(fields.error().message));
        lo.labels = std::move(labels.value());
        lo.fields = std::move(fields.value());
        auto items = store_.list(*rt, ns, lo);
        if (!items.ok()) return errorResponse(items.error());
        std::vector<ObjectPtr> deleted;
        for (const auto& o : items.value().items) {
            auto r = store_.remove(*rt, metaString(o->value, "namespace"), metaString(o->value, "name"), {}, opts);
            if (r.ok()) deleted.push_back(r.value());
        }
        return Response{
            200,
            "application/json",
            fmt::format(R"({{"kind":"{}List","apiVersion":"{}","metadata":{{"resourceVersion":"{}"}},"items":[{}]}})",
                        rt->kind, rt->apiVersion(), store_.resourceVersion(), itemsJoined(deleted)),
            {}};
    }

    json::value body;
    if (verb != "delete" || !req.body.empty()) {
        auto parsed = parseBody(req);
        if (!parsed.ok()) return errorResponse(parsed.error());
        body = std::move(parsed.value());
    }
    if (verb == "delete") {
        json::object options = body.is_object() ? body.get_object() : json::object{};
        if (auto dr = options.find("dryRun"); dr != options.end() && dr->value().is_array())
            for (const auto& v : dr->value().get_array())
                if (v == "All") opts.dryRun = true;
        return object(req, *rt, store_.remove(*rt, ns, name, options, opts), 200, q);
    }
    if (verb == "patch") {
        const std::string& ct = req.contentType;
        PatchType type;
        if (ct.starts_with("application/json-patch+json"))
            type = PatchType::Json;
        else if (ct.starts_with("application/merge-patch+json"))
            type = PatchType::Merge;
        else if (ct.starts_with("application/strategic-merge-patch+json"))
            type = PatchType::Strategic;
        else if (ct.starts_with("application/apply-patch+yaml") || ct.starts_with("application/apply-patch+json"))
            type = PatchType::Apply;
        else
            return errorResponse(ApiError{415,
                                          "UnsupportedMediaType",
                                          fmt::format("the body of the request was in an unknown format - accepted "
                                                      "media types include: application/json-patch+json, "
                                                      "application/merge-patch+json, "
                                                      "application/apply-patch+yaml; got \"{}\"",
                                                      ct),
                                          {},
                                          0});
        if (type == PatchType::Apply && queryValue(q, "fieldManager").empty())
            return errorResponse(
                badRequest("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"));
        bool existed = store_.get(*rt, ns, name).ok();
        auto r = store_.patch(*rt, ns, name, type, body, opts, statusOnly);
        return object(req, *rt, r, existed ? 200 : 201, q);
    }
    if (!body.is_object()) return errorResponse(badRequest("the body of the request must be a JSON object"));
    if (verb == "create") return object(req, *rt, store_.create(*rt, ns, std::move(body.get_object()), opts), 201, q);
    return object(req, *rt, store_.update(*rt, ns, name, std::move(body.get_object()), opts, statusOnly), 200, q);
}

Response Api::object(const Request& req, const ResourceType& rt, const ApiResult<ObjectPtr>& r, int okStatus,
                     const Query& q) {
    if (!r.ok()) return errorResponse(r.error());
    if (wantsTable(req.accept)) {
        json::object t = makeTable(rt, {r.value()}, queryValue(q, "includeObject"));
        t["metadata"] = json::object{{"resourceVersion", metaString(r.value()->value, "resourceVersion")}};
        return Response{okStatus, std::string(kTableType), json::serialize(t), {}};
    }
    return Response{okStatus, "application/json", r.value()->text, {}};
}

Outcome Api::list(const Request& req, const ResourceType& rt, const std::string& ns, const Query& q) {
    ListOptions lo;
    lo.resourceVersion = queryValue(q, "resourceVersion");
    lo.resourceVersionMatch = queryValue(q, "resourceVersionMatch");
    lo.continueToken = queryValue(q, "continue");
    std::string limit = queryValue(q, "limit");
    if (!limit.empty()) {
        auto [p, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), lo.limit);
        if (ec != std::errc() || p != limit.data() + limit.size() || lo.limit < 0)
            return errorResponse(badRequest(fmt::format("invalid limit \"{}\"", limit)));
    }
    auto labels = LabelSelector::parse(queryValue(q, "labelSelector"));
    if (!labels)
        return errorResponse(badRequest(fmt::format("unable to parse requirement: {}", labels.error().message)));
    auto fields = FieldSelector::parse(queryValue(q, "fieldSelector"), rt);
    if (!fields) return errorResponse(badRequest(fields.error().message));
    lo.labels = std::move(labels.value());
    lo.fields = std::move(fields.value());
    auto r = store_.list(rt, ns, lo);
    if (!r.ok()) return errorResponse(r.error());
    const ListResult& l = r.value();
    json::object meta{{"resourceVersion", std::to_string(l.rv)}};
    if (!l.continueToken.empty()) meta["continue"] = l.continueToken;
    if (l.remainingItemCount) meta["remainingItemCount"] = *l.remainingItemCount;
    if (wantsTable(req.accept)) {
        json::object t = makeTable(rt, l.items, queryValue(q, "includeObject"));
        t["metadata"] = std::move(meta);
        return Response{200, std::string(kTableType), json::serialize(t), {}};
    }
    return Response{200,
                    "application/json",
                    fmt::format(R"({{"kind":"{}List","apiVersion":"{}","metadata":{},"items":[{}]}})", rt.kind,
                                rt.apiVersion(), json::serialize(meta), itemsJoined(l.items)),
                    {}};
}

Outcome Api::watch(const Request& req, const ResourceType& rt, const std::string& ns, const Query& q) {
    if (hub_.full()) {
        ApiError e{429, "TooManyRequests", "too many watches open on the lab API server", {}, 1};
        return errorResponse(e);
    }
    WatchPlan plan;
    plan.filter.rt = &rt;
    plan.filter.ns = ns;
    auto labels = LabelSelector::parse(queryValue(q, "labelSelector"));
    if (!labels)
        return errorResponse(badRequest(fmt::format("unable to parse requirement: {}", labels.error().message)));
    auto fields = FieldSelector::parse(queryValue(q, "fieldSelector"), rt);
    if (!fields) return errorResponse(badRequest(fields.error().message));
    plan.filter.labels = std::move(labels.value());
    plan.filter.fields = std::move(fields.value());
    plan.bookmarks = truthy(queryValue(q, "allowWatchBookmarks"));
    plan.table = wantsTable(req.accept);
    plan.includeObject = queryValue(q, "includeObject");
    plan.timeout = options_.defaultWatchTimeout;
    std::string timeout = queryValue(q, "timeoutSeconds");
    if (!timeout.empty()) {
        long secs = 0;
        auto [p, ec] = std::from_chars(timeout.data(), timeout.data() + timeout.size(), secs);
        if (ec != std::errc() || secs < 0)
            return errorResponse(badRequest(fmt::format("invalid timeoutSeconds \"{}\"", timeout)));
        if (secs > 0) plan.timeout = std::chrono::seconds(secs);
    }
    std::string rvs = queryValue(q, "resourceVersion");
    std::string match = queryValue(q, "resourceVersionMatch");
    bool initialEvents = truthy(queryValue(q, "sendInitialEvents"));
    std::optional<std::uint64_t> rv;
    if (!rvs.empty()) {
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(rvs.data(), rvs.data() + rvs.size(), v);
        if (ec != std::errc() || p != rvs.data() + rvs.size())
            return errorResponse(badRequest(fmt::format("invalid resource version \"{}\"", rvs)));
        rv = v;
    }
    if (initialEvents && (match != "NotOlderThan" || !plan.bookmarks))
        return errorResponse(
            badRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true"));
    if (!initialEvents && !match.empty())
        return errorResponse(
            badRequest("resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
    if (rv && *rv > store_.resourceVersion()) {
        ApiError e{504, "Timeout",
                   fmt::format("Too large resource version: {}, current: {}", *rv, store_.resourceVersion()),
                   json::object{{"causes", json::array{json::object{{"reason", "ResourceVersionTooLarge"},
                                                                    {"message", "Too large resource version"}}}},
                                {"retryAfterSeconds", 1}},
                   0};
        plan.error = e;
    } else if (initialEvents || !rv || *rv == 0) {
        // No resourceVersion (or "0"): the current state as ADDED events, then changes.
        for (const auto& o : store_.snapshot(rt, ns))
            if (plan.filter.matches(o->value)) plan.initial.emplace_back(EventType::Added, o);
        plan.initialEventsEnd = initialEvents;
    } else {
        auto events = store_.eventsSince(rt, *rv);
        if (!events.ok()) {
            if (faults_.goneAsStatus) return errorResponse(events.error());
            plan.error = events.error();
        } else {
            for (const auto& e : events.value())
                if (auto t = plan.filter.apply(e)) plan.initial.emplace_back(*t, e.object);
        }
    }
    plan.fault = faults_.takeWatchFault(rt);
    return plan;
}

host::Result<std::size_t> Api::load(std::string_view text, std::string_view name) {
    std::vector<json::value> docs;
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (!ec) {
        docs.push_back(std::move(v));
    } else {
        auto yaml = host::loadYamlString(text, name);
        if (!yaml) return yaml.error();
        for (const auto& d : yaml.value()) {
            if (!d || d.IsNull()) continue;
            auto j = host::yamlToJson(d, name);
            if (!j) return j.error();
            docs.push_back(std::move(j.value()));
        }
    }
    std::vector<json::object> objects;
    for (auto& d : docs) {
        if (!d.is_object()) return host::makeError("{}: a document is not an object", name);
        auto& o = d.get_object();
        auto items = o.find("items");
        if (stringAt(o, "kind").ends_with("List") && items != o.end() && items->value().is_array()) {
            for (auto& i : items->value().get_array())
                if (i.is_object()) objects.push_back(std::move(i.get_object()));
        } else {
            objects.push_back(std::move(o));
        }
    }
    // Namespaces first, so the objects in them can be created whatever the file's order.
    std::stable_partition(objects.begin(), objects.end(),
                          [](const json::object& o) { return stringAt(o, "kind") == "Namespace"; });
    std::size_t n = 0;
    for (auto& o : objects) {
        ResourceType* rt = registry_.findKind(stringAt(o, "apiVersion"), stringAt(o, "kind"));
        if (!rt)
            return host::makeError("{}: object {} of kind {}/{} is not served here (see --crd)", name, n + 1,
                                   stringAt(o, "apiVersion"), stringAt(o, "kind"));
        std::string objName(metaString(o, "name"));
        auto r = store_.upsert(*rt, std::move(o));
        if (!r.ok()) return host::makeError("{}: {} \"{}\": {}", name, rt->kind, objName, r.error().message);
        ++n;
    }
    return n;
}

Response Api::handleAdmin(const Request& req, const std::string& path, const Query&) {
    if (path == "/lab/status" && req.method == "GET") {
        json::array watches;
        for (const auto& [id, info] : hub_.list())
            watches.push_back(json::object{{"id", id}, {"resource", info.rt->groupResource()}, {"namespace", info.ns}});
        json::array hidden;
        for (const auto& t : registry_.all())
            if (t.hidden) hidden.push_back(json::string(t.groupResource()));
        return jsonResponse(200, json::object{{"resourceVersion", std::to_string(store_.resourceVersion())},
                                              {"oldestResourceVersion", std::to_string(store_.oldestResourceVersion())},
                                              {"objects", store_.objectCount()},
                                              {"watches", std::move(watches)},
                                              {"hidden", std::move(hidden)},
                                              {"tokenRejected", auth_.rejected()},
                                              {"faults", faults_.describe()}});
    }
    if (path == "/lab/faults" && req.method == "DELETE") {
        faults_.clear();
        return jsonResponse(200, json::object{{"cleared", true}});
    }
    if (path == "/lab/faults" && req.method == "POST") {
        boost::system::error_code ec;
        json::value spec = json::parse(req.body, ec);
        if (ec) return errorResponse(badRequest(fmt::format("body: {}", ec.message())));
        if (spec.is_object()) return applyFault(spec.get_object());
        if (!spec.is_array()) return errorResponse(badRequest("body: want a fault object or an array of them"));
        json::array results;
        for (const auto& s : spec.get_array()) {
            if (!s.is_object()) return errorResponse(badRequest("body: every fault is an object"));
            Response r = applyFault(s.get_object());
            if (r.status != 200) return r;
            results.push_back(json::parse(r.body));
        }
        return jsonResponse(200, results);
    }
    if (path == "/lab/token" && req.method == "POST") {
        std::string token;
        if (!req.body.empty()) {
            boost::system::error_code ec;
            json::value v = json::parse(req.body, ec);
            if (ec || !v.is_object()) return errorResponse(badRequest("body: want {\"token\": \"...\"}"));
            token = std::string(stringAt(v.get_object(), "token"));
        }
        if (token.empty()) token = randomHex(24);
        auth_.setToken(token);
        if (options_.onToken) options_.onToken(token);
        return jsonResponse(200, json::object{{"token", token}});
    }
    if (path == "/lab/load" && req.method == "POST") {
        auto n = load(req.body, "request body");
        if (!n) return errorResponse(badRequest(n.error().message));
        return jsonResponse(
            200, json::object{{"loaded", n.value()}, {"resourceVersion", std::to_string(store_.resourceVersion())}});
    }
    return errorResponse(pathNotFound());
}

Response Api::applyFault(const json::object& spec) {
    std::string type(stringAt(spec, "type"));
    std::string resource(stringAt(spec, "resource"));
    ResourceType* rt = nullptr;
    if (!resource.empty() && resource != "*") {
        rt = registry_.findByName(resource);
        if (!rt) return errorResponse(badRequest(fmt::format("unknown resource \"{}\"", resource)));
    }
    auto intAt = [&](std::string_view k, int def) {
        auto it = spec.find(k);
        return it != spec.end() && it->value().is_int64() ? static_cast<int>(it->value().get_int64()) : def;
    };
    json::object result{{"type", type}};
    if (type == "expireHistory") {
        store_.expireHistory();
        std::string_view as = stringAt(spec, "goneAs");
        if (!as.empty()) faults_.goneAsStatus = as == "status";
        result["oldestResourceVersion"] = std::to_string(store_.oldestResourceVersion());
    } else if (type == "error") {
        std::vector<std::string> verbs;
        if (auto it = spec.find("verbs"); it != spec.end() && it->value().is_array())
            for (const auto& v : it->value().get_array())
                if (v.is_string()) verbs.emplace_back(v.get_string());
        faults_.addError(rt, intAt("code", 500), intAt("retryAfter", 1), intAt("count", 1), std::move(verbs));
    } else if (type == "cut" || type == "stall" || type == "close" || type == "bookmark") {
        StreamSignal s = type == "cut"     ? StreamSignal::Cut
                         : type == "stall" ? StreamSignal::Stall
                         : type == "close" ? StreamSignal::Close
                                           : StreamSignal::Bookmark;
        std::size_t n = hub_.signal(rt, s);
        result["streams"] = n;
        if (s == StreamSignal::Cut || s == StreamSignal::Stall) {
            int next = intAt("next", n == 0 ? 1 : 0);
            faults_.armWatch(rt, s, next);
            result["armed"] = next;
        }
    } else if (type == "splitChunks") {
        auto it = spec.find("enabled");
        faults_.splitChunks = it == spec.end() || (it->value().is_bool() && it->value().get_bool());
    } else if (type == "rejectToken") {
        auth_.rejectCurrent();
    } else if (type == "hide" || type == "reveal") {
        if (!rt) return errorResponse(badRequest(fmt::format("{} needs a resource", type)));
        rt->hidden = type == "hide";
        // Like a deleted CRD: its watches end.
        if (rt->hidden) result["streams"] = hub_.signal(rt, StreamSignal::Close);
    } else if (type == "clear") {
        faults_.clear();
    } else {
        return errorResponse(badRequest(fmt::format("unknown fault type \"{}\"", type)));
    }
    return jsonResponse(200, result);
}

}  // namespace knp::lab
