// kubeconfig parsing, in-cluster config, tokens.
#include <map>
#include <thread>

#include "helpers.hpp"
#include "kube/config.hpp"

using namespace knp::host::kube;
using knp::host::kube::test::base64;
using knp::host::kube::test::kFakeCa;
using knp::host::kube::test::kFakeKey;
using knp::host::kube::test::TempDir;

namespace {

// A kubeconfig with one cluster "c", one user "u" and contexts "main" (current) and "other".
std::string kubeconfig(const std::string& cluster, const std::string& user, const std::string& extra = "") {
    return "apiVersion: v1\n"
           "kind: Config\n"
           "clusters:\n"
           "- name: c\n"
           "  cluster:\n" +
           cluster +
           "users:\n"
           "- name: u\n"
           "  user:\n" +
           user +
           "contexts:\n"
           "- name: main\n"
           "  context:\n"
           "    cluster: c\n"
           "    user: u\n"
           "    namespace: prod\n"
           "- name: other\n"
           "  context:\n"
           "    cluster: c\n"
           "    user: u\n"
           "current-context: main\n" +
           extra;
}

const std::string kServer = "    server: https://127.0.0.1:6443\n";

std::string errorOf(const knp::host::Result<ClusterConfig>& r) {
    REQUIRE_FALSE(r.ok());
    return r.error().message;
}

}  // namespace

TEST_CASE("kubeconfig: inline CA, token, namespace, current-context") {
    std::string text =
        kubeconfig(kServer + "    certificate-authority-data: " + base64(kFakeCa) + "\n", "    token: abc.def\n");
    auto c = parseKubeconfig(text, "k.yaml", "/nonexistent");
    REQUIRE(c.ok());
    CHECK(c->server == "https://127.0.0.1:6443");
    CHECK(c->caPem == kFakeCa);
    CHECK(c->caFile.empty());
    CHECK(c->token == "abc.def");
    CHECK(c->tokenFile.empty());
    CHECK(c->defaultNamespace == "prod");
    CHECK_FALSE(c->insecureSkipTlsVerify);
    CHECK(c->source == "kubeconfig \"k.yaml\" context \"main\"");
}

TEST_CASE("kubeconfig: an explicit context wins over current-context") {
    auto c = parseKubeconfig(kubeconfig(kServer, "    token: t\n"), "k.yaml", "", "other");
    REQUIRE(c.ok());
    CHECK(c->defaultNamespace.empty());
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer, "    token: t\n"), "k.yaml", "", "nope")) ==
          "k.yaml:1: context (requested): context \"nope\" not found in contexts");
}

TEST_CASE("kubeconfig: files are resolved against the kubeconfig's directory") {
    TempDir d;
    d.write("pki/ca.crt", kFakeCa);
    d.write("pki/client.crt", kFakeCa);
    d.write("pki/client.key", kFakeKey);
    d.write("token", "file-token\n");
    std::string path = d.write("config", kubeconfig(kServer + "    certificate-authority: pki/ca.crt\n",
                                                    "    client-certificate: pki/client.crt\n"
                                                    "    client-key: pki/client.key\n"
                                                    "    tokenFile: token\n"));
    auto c = loadKubeconfig(path);
    REQUIRE(c.ok());
    CHECK(c->caFile == (d.path / "pki/ca.crt").string());
    CHECK(c->caPem.empty());
    CHECK(c->clientCertFile == (d.path / "pki/client.crt").string());
    CHECK(c->clientKeyFile == (d.path / "pki/client.key").string());
    CHECK(c->tokenFile == (d.path / "token").string());

    // Absolute paths stay as they are.
    auto abs = parseKubeconfig(
        kubeconfig(kServer + "    certificate-authority: " + (d.path / "pki/ca.crt").string() + "\n", "    token: t\n"),
        "k.yaml", "/elsewhere");
    REQUIRE(abs.ok());
    CHECK(abs->caFile == (d.path / "pki/ca.crt").string());
}

TEST_CASE("kubeconfig: inline client certificate and key") {
    auto c = parseKubeconfig(kubeconfig(kServer, "    client-certificate-data: " + base64(kFakeCa) +
                                                     "\n    client-key-data: " + base64(kFakeKey) + "\n"),
                             "k.yaml", "");
    REQUIRE(c.ok());
    CHECK(c->clientCertPem == kFakeCa);
    CHECK(c->clientKeyPem == kFakeKey);
    CHECK(c->token.empty());
}

TEST_CASE("kubeconfig: tls-server-name, insecure-skip-tls-verify, IPv6 server, trailing slash") {
    auto c = parseKubeconfig(kubeconfig("    server: https://[fd00::1]:6443/prefix/\n"
                                        "    tls-server-name: kubernetes.default.svc\n"
                                        "    insecure-skip-tls-verify: true\n",
                                        "    token: t\n"),
                             "k.yaml", "");
    REQUIRE(c.ok());
    CHECK(c->server == "https://[fd00::1]:6443/prefix");
    CHECK(c->tlsServerName == "kubernetes.default.svc");
    CHECK(c->insecureSkipTlsVerify);
}

TEST_CASE("kubeconfig: a context without a user authenticates with nothing") {
    std::string text =
        "clusters: [{name: c, cluster: {server: 'https://k:443'}}]\n"
        "contexts: [{name: x, context: {cluster: c}}]\n"
        "current-context: x\n";
    auto c = parseKubeconfig(text, "k.yaml", "");
    REQUIRE(c.ok());
    CHECK(c->token.empty());
    CHECK(c->clientCertPem.empty());
}

TEST_CASE("kubeconfig: errors name the file, line and field") {
    std::string caLine = "    certificate-authority-data: " + base64(kFakeCa) + "\n";
    // Line 6 is the cluster's first field, line 10 the user's (with one cluster field).
    CHECK(errorOf(parseKubeconfig(kubeconfig("    certificate-authority-data: '%%%'\n", "    token: t\n"), "k.yaml",
                                  "")) == "k.yaml:6: clusters[0] (\"c\").cluster.server: missing");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer + "    certificate-authority-data: '%%%'\n", "    token: t\n"),
                                  "k.yaml", "")) ==
          "k.yaml:7: clusters[0] (\"c\").cluster.certificate-authority-data: not valid base64");
    CHECK(errorOf(parseKubeconfig(
              kubeconfig(kServer + "    certificate-authority-data: " + base64("hello") + "\n", "    token: t\n"),
              "k.yaml", "")) ==
          "k.yaml:7: clusters[0] (\"c\").cluster.certificate-authority-data: does not decode to PEM data");
    CHECK(errorOf(parseKubeconfig(kubeconfig("    server: ftp://x\n", "    token: t\n"), "k.yaml", "")) ==
          "k.yaml:6: clusters[0] (\"c\").cluster.server: \"ftp://x\" is not an http(s) URL");
    CHECK(errorOf(parseKubeconfig(
              kubeconfig(kServer + "    certificate-authority: /nonexistent/ca.crt\n", "    token: t\n"), "k.yaml",
              "")) ==
          "k.yaml:7: clusters[0] (\"c\").cluster.certificate-authority: \"/nonexistent/ca.crt\": No such file or "
          "directory");
    CHECK(errorOf(parseKubeconfig(
              kubeconfig(kServer + caLine + "    insecure-skip-tls-verify: true\n", "    token: t\n"), "k.yaml", "")) ==
          "k.yaml:8: clusters[0] (\"c\").cluster.insecure-skip-tls-verify: cannot be combined with a certificate "
          "authority (as kubectl refuses it)");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer + "    insecure-skip-tls-verify: maybe\n", "    token: t\n"),
                                  "k.yaml", "")) ==
          "k.yaml:7: clusters[0] (\"c\").cluster.insecure-skip-tls-verify: must be true or false");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer, "    client-certificate-data: " + base64(kFakeCa) + "\n"),
                                  "k.yaml", "")) ==
          "k.yaml:10: users[0] (\"u\").user.client-key: missing (client-certificate "
          "needs a key)");
    CHECK(errorOf(
              parseKubeconfig(kubeconfig(kServer, "    client-key-data: " + base64(kFakeKey) + "\n"), "k.yaml", "")) ==
          "k.yaml:10: users[0] (\"u\").user.client-certificate: missing (client-key needs a certificate)");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer, "    exec:\n      command: aws\n"), "k.yaml", "")) ==
          "k.yaml:11: users[0] (\"u\").user.exec: not supported by knp");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer, "    token: [a]\n"), "k.yaml", "")) ==
          "k.yaml:10: users[0] (\"u\").user.token: must be a string");
    CHECK(errorOf(parseKubeconfig(kubeconfig(kServer, "    tokenFile: /nonexistent/token\n"), "k.yaml", "")) ==
          "k.yaml:10: users[0] (\"u\").user.tokenFile: \"/nonexistent/token\": No such file or directory");
}

TEST_CASE("kubeconfig: structural errors") {
    CHECK(errorOf(parseKubeconfig("", "k.yaml", "")) == "k.yaml: empty kubeconfig");
    CHECK(errorOf(parseKubeconfig("- a\n", "k.yaml", "")) == "k.yaml:1: (top level): must be a mapping");
    CHECK(errorOf(parseKubeconfig("kind: Pod\n", "k.yaml", "")) == "k.yaml:1: kind: \"Pod\": want Config");
    CHECK(errorOf(parseKubeconfig("kind: Config\nclusters: []\n", "k.yaml", "")) ==
          "k.yaml:1: current-context: missing (and no context was named)");
    CHECK(errorOf(parseKubeconfig("current-context: x\n", "k.yaml", "")) ==
          "k.yaml:1: current-context: context \"x\" not found in contexts");
    CHECK(
        errorOf(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {cluster: y}}]\n", "k.yaml", "")) ==
        "k.yaml:2: contexts[0] (\"x\").context.cluster: cluster \"y\" not found in clusters");
    CHECK(errorOf(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {user: y}}]\n", "k.yaml", "")) ==
          "k.yaml:2: contexts[0] (\"x\").context.cluster: missing");
    CHECK(errorOf(parseKubeconfig("current-context: x\ncontexts: {x: 1}\n", "k.yaml", "")) ==
          "k.yaml:2: contexts: must be a list");
    CHECK(errorOf(parseKubeconfig("a: [\n", "k.yaml", "")).starts_with("k.yaml:2:1: invalid YAML"));
    CHECK(errorOf(loadKubeconfig("/nonexistent/kubeconfig")) ==
          "kubeconfig: \"/nonexistent/kubeconfig\": No such file or directory");
}

TEST_CASE("base64") {
    CHECK(base64Decode("aGVsbG8=") == std::optional<std::string>("hello"));
    CHECK(base64Decode("aGVs\nbG8") == std::optional<std::string>("hello"));
    CHECK(base64Decode("") == std::optional<std::string>(""));
    CHECK_FALSE(base64Decode("a").has_value());
    CHECK_FALSE(base64Decode("aGV*").has_value());
    CHECK_FALSE(base64Decode("aG=Vs").has_value());
}

TEST_CASE("in-cluster: server from the environment, files from the service-account directory") {
    TempDir d;
    d.write("ca.crt", kFakeCa);
    d.write("token", "sa-token\n");
    d.write("namespace", "kube-system");
    std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                           {"KUBERNETES_SERVICE_PORT", "443"}};
    InClusterOptions o;
    o.serviceAccountDir = d.path.string();
    o.getenv = [&](const char* k) -> const char* {
        auto it = env.find(k);
        return it == env.end() ? nullptr : it->second.c_str();
    };
    auto c = inClusterConfig(o);
    REQUIRE(c.ok());
    CHECK(c->server == "https://10.96.0.1:443");
    CHECK(c->caFile == (d.path / "ca.crt").string());
    CHECK(c->tokenFile == (d.path / "token").string());
    CHECK(c->token.empty());
    CHECK(c->defaultNamespace == "kube-system");
    CHECK(c->source == "in-cluster");
    CHECK_FALSE(c->insecureSkipTlsVerify);

    env["KUBERNETES_SERVICE_HOST"] = "fd00:10:96::1";
    c = inClusterConfig(o);
    REQUIRE(c.ok());
    CHECK(c->server == "https://[fd00:10:96::1]:443");

    env["KUBERNETES_SERVICE_PORT"] = "44x";
    CHECK(errorOf(inClusterConfig(o)) == "in-cluster config: KUBERNETES_SERVICE_PORT=\"44x\" is not a port");
    env["KUBERNETES_SERVICE_PORT"] = "443";

    env.erase("KUBERNETES_SERVICE_HOST");
    CHECK(errorOf(inClusterConfig(o)).starts_with("in-cluster config: KUBERNETES_SERVICE_HOST and"));
    env["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";

    std::filesystem::remove(d.path / "token");
    CHECK(errorOf(inClusterConfig(o)) ==
          "in-cluster config: token: \"" + (d.path / "token").string() + "\": No such file or directory");
    d.write("token", "  \n");
    CHECK(errorOf(inClusterConfig(o)) == "in-cluster config: token \"" + (d.path / "token").string() + "\" is empty");
    d.write("token", "t");
    d.write("ca.crt", "not a certificate");
    CHECK(errorOf(inClusterConfig(o)) ==
          "in-cluster config: CA \"" + (d.path / "ca.crt").string() + "\": no PEM certificate in it");
    std::filesystem::remove(d.path / "ca.crt");
    CHECK(errorOf(inClusterConfig(o)).starts_with("in-cluster config: CA: "));
    // The namespace file is optional.
    d.write("ca.crt", kFakeCa);
    std::filesystem::remove(d.path / "namespace");
    c = inClusterConfig(o);
    REQUIRE(c.ok());
    CHECK(c->defaultNamespace.empty());
}

TEST_CASE("httpsUrl brackets IPv6 literals") {
    CHECK(httpsUrl("10.0.0.1", "443") == "https://10.0.0.1:443");
    CHECK(httpsUrl("::1", "6443") == "https://[::1]:6443");
    CHECK(httpsUrl("[::1]", "6443") == "https://[::1]:6443");
    CHECK(httpsUrl("kubernetes.default.svc", "443") == "https://kubernetes.default.svc:443");
}

TEST_CASE("TokenSource: a rotated token file is picked up periodically and after invalidate()") {
    TempDir d;
    std::string path = d.write("token", "one\n");
    TokenSource periodic("inline", path, std::chrono::milliseconds(50));
    CHECK(periodic.token() == "one");
    d.write("token", "two");
    CHECK(periodic.token() == "one");  // cached
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    CHECK(periodic.token() == "two");

    TokenSource onDemand("", path, std::chrono::hours(1));
    CHECK(onDemand.token() == "two");
    d.write("token", "three");
    CHECK(onDemand.token() == "two");
    onDemand.invalidate();  // a 401
    CHECK(onDemand.token() == "three");

    // An unreadable file keeps the last good token.
    std::filesystem::remove(path);
    onDemand.invalidate();
    CHECK(onDemand.token() == "three");

    TokenSource inlineOnly("static", "", std::chrono::seconds(1));
    CHECK(inlineOnly.token() == "static");
    CHECK_FALSE(inlineOnly.hasFile());
}
