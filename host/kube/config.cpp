#include "kube/config.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <yaml-cpp/yaml.h>

#include "common/log.hpp"
#include "common/yaml_json.hpp"

namespace knp::host::kube {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxSmallFile = 1 << 20;

std::string trimmed(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

bool looksLikePem(std::string_view s) { return s.find("-----BEGIN ") != std::string_view::npos; }

// Walks one kubeconfig document and reports errors as "file:line: field: message".
class Reader {
public:
    Reader(std::string name, std::string baseDir) : name_(std::move(name)), baseDir_(std::move(baseDir)) {}

    template <class... Args>
    Error err(const YAML::Node& at, std::string_view field, fmt::format_string<Args...> f, Args&&... args) const {
        int line = at ? yamlLine(at) : 0;
        std::string where = line > 0 ? fmt::format("{}:{}", name_, line) : name_;
        return makeError("{}: {}: {}", where, field, fmt::format(f, std::forward<Args>(args)...));
    }

    // A string scalar (absent or null: ""). `parent` is a map.
    Result<std::string> str(const YAML::Node& parent, const char* key, const std::string& field) const {
        YAML::Node n = parent[key];
        if (!n || n.IsNull()) return std::string();
        if (!n.IsScalar()) return err(n, field, "must be a string");
        return n.Scalar();
    }

    Result<bool> boolean(const YAML::Node& parent, const char* key, const std::string& field) const {
        YAML::Node n = parent[key];
        if (!n || n.IsNull()) return false;
        if (n.IsScalar()) {
            const std::string& s = n.Scalar();
            if (s == "true" || s == "True" || s == "TRUE") return true;
            if (s == "false" || s == "False" || s == "FALSE") return false;
        }
        return err(n, field, "must be true or false");
    }

    // Inline base64 PEM data ("...-data" fields).
    Result<std::string> pemData(const YAML::Node& parent, const char* key, const std::string& field) const {
        auto s = str(parent, key, field);
        if (!s || s->empty()) return s;
        auto decoded = base64Decode(*s);
        if (!decoded) return err(parent[key], field, "not valid base64");
        if (!looksLikePem(*decoded)) return err(parent[key], field, "does not decode to PEM data");
        return std::move(*decoded);
    }

    // A file path field, resolved against the kubeconfig's directory and checked readable.
    Result<std::string> file(const YAML::Node& parent, const char* key, const std::string& field) const {
        auto s = str(parent, key, field);
        if (!s || s->empty()) return s;
        fs::path p(*s);
        if (p.is_relative() && !baseDir_.empty()) p = fs::path(baseDir_) / p;
        auto content = readSmallFile(p.string());
        if (!content) return err(parent[key], field, "{}", content.error().message);
        return p.string();
    }

    // A PEM source given as `<name>-data` (inline, base64) or `<name>` (a file); as client-go,
    // inline data wins over a file.
    Status pemSource(const YAML::Node& parent, const std::string& name, const std::string& field, std::string& pem,
                     std::string& file) const {
        std::string dataKey = name + "-data";
        auto data = pemData(parent, dataKey.c_str(), field + "." + dataKey);
        if (!data) return std::move(data).error();
        auto path = this->file(parent, name.c_str(), field + "." + name);
        if (!path) return std::move(path).error();
        if (!data->empty())
            pem = std::move(*data);
        else
            file = std::move(*path);
        return okStatus();
    }

    // The entry named `want` of a top-level list (`clusters`, `users`, `contexts`), and its
    // field path for errors, e.g. `users[1] ("admin")`.
    struct Entry {
        YAML::Node body;  // the `cluster`/`user`/`context` map
        std::string field;
    };
    Result<Entry> named(const YAML::Node& root, const char* list, const char* inner, const std::string& want,
                        const std::string& referredBy, const YAML::Node& referrer) const {
        YAML::Node seq = root[list];
        if (seq && !seq.IsNull() && !seq.IsSequence()) return err(seq, list, "must be a list");
        if (seq && seq.IsSequence()) {
            for (size_t i = 0; i < seq.size(); ++i) {
                YAML::Node item = seq[i];
                std::string field = fmt::format("{}[{}]", list, i);
                if (!item.IsMap()) return err(item, field, "must be a mapping");
                auto name = str(item, "name", field + ".name");
                if (!name) return std::move(name).error();
                if (*name != want) continue;
                field += fmt::format(" ({:?})", want);
                YAML::Node body = item[inner];
                if (!body || body.IsNull()) body = YAML::Node(YAML::NodeType::Map);
                if (!body.IsMap()) return err(item[inner], field + "." + inner, "must be a mapping");
                return Entry{body, field + "." + inner};
            }
        }
        return err(referrer, referredBy, "{} {:?} not found in {}", inner, want, list);
    }

private:
    std::string name_;
    std::string baseDir_;
};

Result<std::string> validateServer(const Reader& r, const YAML::Node& at, const std::string& field, std::string s) {
    if (s.empty()) return r.err(at, field, "missing");
    if (!s.starts_with("https://") && !s.starts_with("http://"))
        return r.err(at, field, "{:?} is not an http(s) URL", s);
    size_t hostStart = s.find("://") + 3;
    if (hostStart >= s.size() || s[hostStart] == '/') return r.err(at, field, "{:?} has no host", s);
    while (s.size() > hostStart && s.back() == '/') s.pop_back();
    return s;
}

}  // namespace

std::optional<std::string> base64Decode(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    size_t digits = 0;
    bool padding = false;
    for (char c : in) {
        if (std::isspace(static_cast<unsigned char>(c))) continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        int v = value(c);
        if (v < 0 || padding) return std::nullopt;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        ++digits;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    if (digits % 4 == 1) return std::nullopt;
    return out;
}

Result<std::string> readSmallFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return makeError("{:?}: {}", path, std::strerror(errno));
    std::string s;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        s.append(buf, static_cast<size_t>(in.gcount()));
        if (s.size() > kMaxSmallFile) return makeError("{:?}: larger than {} bytes", path, kMaxSmallFile);
    }
    if (in.bad()) return makeError("{:?}: read error", path);
    return s;
}

Result<ClusterConfig> parseKubeconfig(const std::string& text, const std::string& name, const std::string& baseDir,
                                      const std::string& context) {
    auto docs = loadYamlString(text, name);
    if (!docs) return std::move(docs).error();
    if (docs->empty() || !(*docs)[0] || (*docs)[0].IsNull()) return makeError("{}: empty kubeconfig", name);
    if (docs->size() > 1) return makeError("{}: more than one YAML document", name);
    const YAML::Node root = (*docs)[0];
    Reader r(name, baseDir);
    if (!root.IsMap()) return r.err(root, "(top level)", "must be a mapping");
    auto kind = r.str(root, "kind", "kind");
    if (!kind) return std::move(kind).error();
    if (!kind->empty() && *kind != "Config") return r.err(root["kind"], "kind", "{:?}: want Config", *kind);

    ClusterConfig c;
    // The context: explicit, else current-context.
    std::string ctxName = context;
    YAML::Node ctxRef = root["current-context"];
    std::string ctxField = "current-context";
    if (ctxName.empty()) {
        auto cur = r.str(root, "current-context", "current-context");
        if (!cur) return std::move(cur).error();
        if (cur->empty()) return r.err(root, "current-context", "missing (and no context was named)");
        ctxName = *cur;
    } else {
        ctxRef = root;
        ctxField = "context (requested)";
    }
    auto ctx = r.named(root, "contexts", "context", ctxName, ctxField, ctxRef);
    if (!ctx) return std::move(ctx).error();
    auto clusterName = r.str(ctx->body, "cluster", ctx->field + ".cluster");
    if (!clusterName) return std::move(clusterName).error();
    if (clusterName->empty()) return r.err(ctx->body, ctx->field + ".cluster", "missing");
    auto userName = r.str(ctx->body, "user", ctx->field + ".user");
    if (!userName) return std::move(userName).error();
    auto ns = r.str(ctx->body, "namespace", ctx->field + ".namespace");
    if (!ns) return std::move(ns).error();
    c.defaultNamespace = *ns;

    // The cluster.
    auto cl = r.named(root, "clusters", "cluster", *clusterName, ctx->field + ".cluster", ctx->body["cluster"]);
    if (!cl) return std::move(cl).error();
    const YAML::Node& cb = cl->body;
    const std::string& cf = cl->field;
    auto server = r.str(cb, "server", cf + ".server");
    if (!server) return std::move(server).error();
    auto url = validateServer(r, cb["server"] ? cb["server"] : cb, cf + ".server", *server);
    if (!url) return std::move(url).error();
    c.server = std::move(*url);
    auto tlsName = r.str(cb, "tls-server-name", cf + ".tls-server-name");
    if (!tlsName) return std::move(tlsName).error();
    c.tlsServerName = *tlsName;
    auto insecure = r.boolean(cb, "insecure-skip-tls-verify", cf + ".insecure-skip-tls-verify");
    if (!insecure) return std::move(insecure).error();
    c.insecureSkipTlsVerify = *insecure;
    if (auto st = r.pemSource(cb, "certificate-authority", cf, c.caPem, c.caFile); !st) return st.error();
    if (c.insecureSkipTlsVerify && (!c.caPem.empty() || !c.caFile.empty()))
        return r.err(cb["insecure-skip-tls-verify"], cf + ".insecure-skip-tls-verify",
                     "cannot be combined with a certificate authority (as kubectl refuses it)");
    if (auto proxy = r.str(cb, "proxy-url", cf + ".proxy-url"); !proxy)
        return std::move(proxy).error();
    else if (!proxy->empty())
        return r.err(cb["proxy-url"], cf + ".proxy-url", "not supported");

    // The user (a context without one authenticates with TLS only, or not at all).
    if (!userName->empty()) {
        auto us = r.named(root, "users", "user", *userName, ctx->field + ".user", ctx->body["user"]);
        if (!us) return std::move(us).error();
        const YAML::Node& ub = us->body;
        const std::string& uf = us->field;
        for (const char* unsupported : {"exec", "auth-provider", "username", "password", "as", "as-groups"})
            if (ub[unsupported] && !ub[unsupported].IsNull())
                return r.err(ub[unsupported], uf + "." + unsupported, "not supported by knp");
        auto token = r.str(ub, "token", uf + ".token");
        if (!token) return std::move(token).error();
        c.token = trimmed(*token);
        auto tokenFile = r.file(ub, "tokenFile", uf + ".tokenFile");
        if (!tokenFile) return std::move(tokenFile).error();
        c.tokenFile = std::move(*tokenFile);
        if (auto st = r.pemSource(ub, "client-certificate", uf, c.clientCertPem, c.clientCertFile); !st)
            return st.error();
        if (auto st = r.pemSource(ub, "client-key", uf, c.clientKeyPem, c.clientKeyFile); !st) return st.error();
        bool haveCert = !c.clientCertPem.empty() || !c.clientCertFile.empty();
        bool haveKey = !c.clientKeyPem.empty() || !c.clientKeyFile.empty();
        if (haveCert && !haveKey) return r.err(ub, uf + ".client-key", "missing (client-certificate needs a key)");
        if (haveKey && !haveCert)
            return r.err(ub, uf + ".client-certificate", "missing (client-key needs a certificate)");
    }
    c.source = fmt::format("kubeconfig {:?} context {:?}", name, ctxName);
    return c;
}

Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& context) {
    auto text = readSmallFile(path);
    if (!text) return std::move(text).error().withContext("kubeconfig: ");
    std::string base = fs::path(path).parent_path().string();
    return parseKubeconfig(*text, path, base, context);
}

std::string httpsUrl(std::string_view host, std::string_view port) {
    bool v6 = host.find(':') != std::string_view::npos && !host.starts_with("[");
    return fmt::format("https://{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

Result<ClusterConfig> inClusterConfig(const InClusterOptions& options) {
    auto env = [&](const char* name) -> std::string {
        const char* v = options.getenv ? options.getenv(name) : std::getenv(name);
        return v ? std::string(v) : std::string();
    };
    std::string host = env("KUBERNETES_SERVICE_HOST");
    std::string port = env("KUBERNETES_SERVICE_PORT");
    if (host.empty() || port.empty())
        return makeError(
            "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (not running in a "
            "pod? use --kubeconfig)");
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535)
        return makeError("in-cluster config: KUBERNETES_SERVICE_PORT={:?} is not a port", port);
    fs::path dir(options.serviceAccountDir);
    ClusterConfig c;
    c.server = httpsUrl(host, port);
    c.caFile = (dir / "ca.crt").string();
    auto ca = readSmallFile(c.caFile);
    if (!ca) return std::move(ca).error().withContext("in-cluster config: CA: ");
    if (!looksLikePem(*ca)) return makeError("in-cluster config: CA {:?}: no PEM certificate in it", c.caFile);
    c.tokenFile = (dir / "token").string();
    auto token = readSmallFile(c.tokenFile);
    if (!token) return std::move(token).error().withContext("in-cluster config: token: ");
    if (trimmed(*token).empty()) return makeError("in-cluster config: token {:?} is empty", c.tokenFile);
    if (auto ns = readSmallFile((dir / "namespace").string())) c.defaultNamespace = trimmed(*ns);
    c.source = "in-cluster";
    return c;
}

TokenSource::TokenSource(std::string inlineToken, std::string file, Clock::duration refresh)
    : inline_(std::move(inlineToken)), file_(std::move(file)), refresh_(refresh) {}

std::string TokenSource::token() {
    std::lock_guard lock(mu_);
    if (file_.empty()) return inline_;
    auto now = Clock::now();
    if (stale_ || now - readAt_ >= refresh_) {
        auto content = readSmallFile(file_);
        if (content) {
            cached_ = trimmed(std::move(*content));
            if (failing_) logf(LogLevel::Info, "kube: token file {:?} readable again", file_);
            failing_ = false;
        } else if (!failing_) {
            logf(LogLevel::Warning, "kube: cannot re-read the token file, keeping the last token: {}",
                 content.error().message);
            failing_ = true;
        }
        readAt_ = now;
        stale_ = false;
    }
    return cached_.empty() ? inline_ : cached_;
}

void TokenSource::invalidate() {
    std::lock_guard lock(mu_);
    stale_ = true;
}

}  // namespace knp::host::kube
