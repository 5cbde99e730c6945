// The Kubernetes API as HTTP-free request handling: routing, authentication, discovery,
// the REST verbs and the admin API. The HTTP layer (http_server.cpp) turns bytes into a
// Request and streams a WatchPlan; everything Kubernetes-specific is decided here.
// THREAD: thread-bound to the io_context thread (it drives the Store and WatchHub).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "faults.hpp"
#include "store.hpp"
#include "watch.hpp"

namespace knp::lab {

struct Request {
    std::string method;
    std::string target;  // path and query, as sent
    std::string accept;
    std::string contentType;
    std::string authorization;
    std::string userAgent;
    std::string body;
};

struct Response {
    int status = 200;
    std::string contentType = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

// A watch to stream: what to send first, then live events through the WatchHub.
struct WatchPlan {
    WatchFilter filter;
    std::vector<std::pair<EventType, ObjectPtr>> initial;
    std::optional<ApiError> error;  // sent as an ERROR event, then the stream ends
    bool bookmarks = false;
    bool initialEventsEnd = false;  // a BOOKMARK annotated k8s.io/initial-events-end after `initial`
    std::chrono::seconds timeout{1800};
    bool table = false;
    std::string includeObject;
    std::optional<StreamSignal> fault;  // armed through the admin API
};

using Outcome = std::variant<Response, WatchPlan>;

struct ApiOptions {
    std::string serverAddress;  // host:port, for /api's serverAddressByClientCIDRs
    std::string kubeMinor = "32";
    std::chrono::seconds defaultWatchTimeout{1800};
    // Called when the admin API sets a new token (rewrites DIR/token and DIR/kubeconfig).
    std::function<void(const std::string&)> onToken;
};

class Api {
public:
    Api(Registry& registry, Store& store, WatchHub& hub, Faults& faults, Auth& auth, ApiOptions options);

    Outcome handle(const Request& req);

    // One line of a watch stream ("{...}\n"), as the HTTP layer writes it.
    std::string eventLine(const WatchPlan& plan, EventType type, const ObjectPtr& object) const;
    std::string bookmarkLine(const WatchPlan& plan, bool initialEventsEnd) const;
    static std::string errorLine(const ApiError& e);
    static Response errorResponse(const ApiError& e);

    Faults& faults() { return faults_; }
    void setServerAddress(std::string address) { options_.serverAddress = std::move(address); }

    // Loads objects (JSON or YAML, Lists flattened, namespaces first): --load and POST /lab/load.
    host::Result<std::size_t> load(std::string_view text, std::string_view name);

private:
    using Query = std::map<std::string, std::string>;
    Response handleAdmin(const Request& req, const std::string& path, const Query& q);
    Response applyFault(const json::object& spec);
    Outcome handleResource(const Request& req, const std::vector<std::string>& segs, const Query& q);
    Outcome list(const Request& req, const ResourceType& rt, const std::string& ns, const Query& q);
    Outcome watch(const Request& req, const ResourceType& rt, const std::string& ns, const Query& q);
    Response object(const Request& req, const ResourceType& rt, const ApiResult<ObjectPtr>& r, int okStatus,
                    const Query& q);

    Registry& registry_;
    Store& store_;
    WatchHub& hub_;
    Faults& faults_;
    Auth& auth_;
    ApiOptions options_;
};

}  // namespace knp::lab
