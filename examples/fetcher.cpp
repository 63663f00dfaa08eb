// The seeds' "web scrapers with concurrent requests" (003, named with no code), in the shape of
// seed 002's Semaphore example: many concurrent requests, at most N at a time, each with a
// timeout.
//   sem = asyncio.Semaphore(5)
//   async def fetch(session, url):
//       async with sem:
//           try:
//               async with asyncio.timeout(2):
//                   async with session.get(url) as resp: return await resp.text()
//           except asyncio.TimeoutError: return None
//   results = await asyncio.gather(*(fetch(session, u) for u in urls))
//
// The "web" is a small HTTP/1.0 server this program starts on 127.0.0.1 (nothing leaves the
// machine). Some of its pages are deliberately slow, to show the per-request timeout; the
// semaphore keeps at most five requests in flight. The program checks that exactly the slow
// pages timed out, that every other page arrived intact, and that the limit held.
#include <corio/corio.hpp>
#include <corio/semaphore.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int kPages = 24;
constexpr int kConcurrency = 5;
// Long enough that a healthy page never misses it on a loaded machine; the slow pages never
// answer, so they time out whatever the load.
constexpr auto kRequestTimeout = 2s;
bool is_slow(int page) { return page % 7 == 5; }  // pages 5, 12 and 19

std::string body_of(int page) { return "<html>page " + std::to_string(page) + "</html>"; }

// --- the local web server --------------------------------------------------------------------

corio::Coro<> serve_page(corio::StreamReader reader, corio::StreamWriter writer) {
    corio::Coro<std::string> reading = reader.readuntil("\r\n\r\n");
    std::string request = co_await std::move(reading);
    // "GET /page/7 HTTP/1.0"
    std::string path = request.substr(4, request.find(' ', 4) - 4);
    int page = std::atoi(path.c_str() + path.rfind('/') + 1);
    if (is_slow(page)) co_await corio::sleep(1h);  // a server that hangs
    std::string body = body_of(page);
    writer.write("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\n\r\n" + body);
    co_await writer.drain();
}

// --- the scraper -----------------------------------------------------------------------------

struct Throttle {
    corio::Semaphore sem{kConcurrency};
    int in_flight = 0;
    int max_in_flight = 0;
};

// One HTTP GET: the body, or an exception.
corio::Coro<std::string> http_get(std::uint16_t port, std::string path) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    writer.write("GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    co_await writer.drain();
    std::string response = co_await reader.read(-1);  // HTTP/1.0: the server closes at the end
    writer.close();
    if (response.rfind("HTTP/1.0 200", 0) != 0) throw std::runtime_error("bad response for " + path);
    co_return response.substr(response.find("\r\n\r\n") + 4);
}

// async with sem: async with timeout: ...
corio::Coro<std::optional<std::string>> fetch(Throttle* throttle, std::uint16_t port, int page) {
    auto held = co_await throttle->sem.acquire();
    throttle->max_in_flight = std::max(throttle->max_in_flight, ++throttle->in_flight);
    std::optional<std::string> body;
    try {
        corio::Coro<std::string> request = http_get(port, "/page/" + std::to_string(page));
        corio::Coro<std::string> limited = corio::wait_for(std::move(request), kRequestTimeout);
        body = co_await std::move(limited);
        std::printf("  page %2d: %zu bytes\n", page, body->size());
    } catch (const corio::TimeoutError&) {
        std::printf("  page %2d: timed out after %lld ms\n", page,
                    static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(kRequestTimeout).count()));
    }
    --throttle->in_flight;
    co_return body;
}

corio::Coro<int> main_coro() {
    corio::Coro<corio::Server> starting = corio::start_server(serve_page, "127.0.0.1", 0);
    corio::Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();
    std::printf("local web server on 127.0.0.1:%u; fetching %d pages, %d at a time\n", unsigned(port), kPages,
                kConcurrency);

    Throttle throttle;
    auto started = corio::get_running_loop().time();
    std::vector<corio::Coro<std::optional<std::string>>> requests;
    for (int page = 0; page < kPages; ++page) requests.push_back(fetch(&throttle, port, page));
    auto all = corio::gather(std::move(requests));
    std::vector<std::optional<std::string>> results = co_await std::move(all);
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(corio::get_running_loop().time() - started);

    // The slow pages' handlers are still sleeping: stop them with the server.
    server.close();
    server.cancel_clients();
    co_await server.wait_closed();

    int ok = 0, timed_out = 0;
    bool right = true;
    for (int page = 0; page < kPages; ++page) {
        const auto& r = results[std::size_t(page)];
        if (r) ++ok; else ++timed_out;
        if (is_slow(page) ? r.has_value() : (!r || *r != body_of(page))) right = false;
    }
    std::printf("%d ok, %d timed out, at most %d request(s) in flight, %lld ms in all\n", ok, timed_out,
                throttle.max_in_flight, static_cast<long long>(elapsed.count()));
    bool passed = right && throttle.max_in_flight <= kConcurrency && throttle.max_in_flight > 1;
    std::printf("%s\n", passed ? "OK" : "FAILED");
    co_return passed ? 0 : 1;
}

}  // namespace

int main() {
    try {
        return corio::run(main_coro());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fetcher: %s\n", e.what());
        return 1;
    }
}
