// `make demo`: a load test against a local TCP service, the core of corio in one program.
//
//   spawner ──permit──▶ client tasks ──▶ Queue ──▶ verified() ──▶ Queue ──▶ recorder tasks ──▶ table
//   (Semaphore)        (TaskGroup,     replies   (async generator:   checked  (latency, counts)
//                       a timeout each)           checksums on a thread)
//
// The server, on 127.0.0.1 and an OS-chosen port, echoes each request after a little async
// work; a few requests stall past the clients' timeout, and a few are refused. Timeouts and
// refusals are outcomes to count, not failures. Ctrl-C cancels the whole run cleanly:
// corio::run cancels the main task, every task below it unwinds, and run() throws
// KeyboardInterrupt. The program checks its own books and exits 1 if they do not balance.
#include <corio/corio.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Millis = std::chrono::milliseconds;

struct Config {
    long clients = 10000;
    long concurrency = 200;
    long timeout_ms = 250;
    long size = 512;
    long slow_pct = 3;
    long workers = 4;
    long batch = 64;
};

struct Knob {
    const char* flag;
    const char* metavar;
    long Config::*field;
    long min, max;
    const char* help;
};

constexpr Knob kKnobs[] = {
    {"--clients", "N", &Config::clients, 1, 10'000'000, "requests to make, one client connection each"},
    {"--concurrency", "N", &Config::concurrency, 1, 5'000, "requests in flight at once (the semaphore)"},
    {"--timeout", "MS", &Config::timeout_ms, 1, 600'000, "timeout of each request, connect to last byte"},
    {"--size", "BYTES", &Config::size, 1, 65'536, "message size: sent, echoed back, checksummed"},
    {"--slow", "PCT", &Config::slow_pct, 0, 100, "share of requests the server stalls 300-600 ms on"},
    {"--workers", "N", &Config::workers, 1, 64, "tasks recording the results from the queue"},
    {"--batch", "N", &Config::batch, 1, 10'000, "replies checksummed per trip to a thread"},
};

void usage(std::FILE* out) {
    const Config defaults;
    std::fprintf(out,
                 "usage: example_demo [options]\n\n"
                 "A load test on loopback: a TCP echo service with a slow tail, and many clients\n"
                 "(one request each) through a semaphore, each under a timeout. Ctrl-C stops it cleanly.\n\n"
                 "options:\n");
    for (const Knob& k : kKnobs) {
        std::string flag = std::string(k.flag) + " " + k.metavar;
        std::fprintf(out, "  %-17s %-50s (default %ld)\n", flag.c_str(), k.help, defaults.*k.field);
    }
    std::fprintf(out, "  %-17s %s\n", "-h, --help", "this text");
}

// -1 to go on, else the exit code: 0 after --help, 2 after a bad flag (with the reason on stderr).
int parse_args(int argc, char** argv, Config& cfg) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        }
        std::string_view name = arg, value;
        bool inline_value = false;
        if (auto eq = arg.find('='); eq != std::string_view::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            inline_value = true;
        }
        const Knob* knob = nullptr;
        for (const Knob& k : kKnobs)
            if (name == k.flag) knob = &k;
        if (!knob) {
            std::fprintf(stderr, "example_demo: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        }
        if (!inline_value) {
            if (i + 1 == argc) {
                std::fprintf(stderr, "example_demo: %s needs a value (%s)\n", knob->flag, knob->metavar);
                return 2;
            }
            value = argv[++i];
        }
        long n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || end != value.data() + value.size() || n < knob->min || n > knob->max) {
            std::fprintf(stderr, "example_demo: %s expects a whole number from %ld to %ld, not '%.*s'\n", knob->flag,
                         knob->min, knob->max, int(value.size()), value.data());
            return 2;
        }
        cfg.*knob->field = n;
    }
    return -1;
}

// Each request holds two descriptors (both ends of its connection), and a server handler may
// outlive its timed-out client for a while: make room, or say clearly why there is none.
bool ensure_descriptors(long concurrency) {
    rlim_t needed = rlim_t(3 * concurrency + 64);
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= needed) return true;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed) {
        std::fprintf(stderr, "example_demo: --concurrency %ld needs about %llu open files; the limit is %llu (ulimit -n)\n",
                     concurrency, static_cast<unsigned long long>(needed), static_cast<unsigned long long>(lim.rlim_max));
        return false;
    }
    lim.rlim_cur = needed;
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

// ---------------------------------------------------------------------------------------
// The protocol: the client sends "id size\n" and `size` bytes; the server answers
// "OK size\n" and the same bytes back, or "ERR busy\n".

std::uint64_t mix(std::uint64_t x) {  // splitmix64: a cheap, well-spread hash of an id
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string make_payload(long id, long size) {
    std::string s(std::size_t(size), ' ');
    std::uint64_t x = mix(std::uint64_t(id)) | 1;
    for (char& c : s) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c = char('a' + x % 26);
    }
    return s;
}

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// The server's behaviour is a pure function of the request id, so every run meets the same
// slow tail: 1% refused, `slow_pct`% stalled for 300-600 ms (past the default timeout), the
// rest answered within 5-100 ms.
struct Plan {
    bool refuse;
    Millis delay;
};

Plan plan_for(long id, long slow_pct) {
    std::uint64_t h = mix(std::uint64_t(id) ^ 0x5eedull);
    if (h % 100 == 0) return {true, 2ms};
    bool slow = long((h >> 8) % 100) < slow_pct;
    long spread = long(h >> 20);
    return {false, slow ? Millis(300 + spread % 301) : Millis(5 + spread % 96)};
}

struct ServerBooks {
    long received = 0;  // requests read in full
};

corio::Coro<> serve_request(corio::StreamReader reader, corio::StreamWriter writer, ServerBooks* books, long slow_pct) {
    try {
        std::string header = co_await reader.readline();
        long id = 0, size = 0;
        if (std::sscanf(header.c_str(), "%ld %ld", &id, &size) != 2 || size < 0 || size > 65'536) co_return;
        std::string payload = co_await reader.readexactly(std::size_t(size));
        ++books->received;
        Plan plan = plan_for(id, slow_pct);
        co_await corio::sleep(plan.delay);  // the "work"
        if (plan.refuse) {
            writer.write("ERR busy\n");
        } else {
            writer.write("OK " + std::to_string(size) + "\n");
            writer.write(payload);
        }
        co_await writer.drain();
    } catch (const std::exception&) {
        // A short read or a reset: the client timed out and hung up. Nothing to answer. (A
        // CancelledError is no std::exception: it goes on.)
    }
    // Returning closes the connection (start_server does it for every handler).
}

// ---------------------------------------------------------------------------------------
// The clients.

enum class Status { Ok, Refused, BadEcho, Failed, TimedOut };

struct Reply {
    long id = 0;
    Status status = Status::Failed;
    double latency_ms = 0;
    std::string body;  // the echo, until it has been checked
};

struct Tally {
    long in_flight = 0;
    long cancelled = 0;  // in flight when Ctrl-C came
};

corio::Coro<Reply> exchange(long id, std::uint16_t port, long size) {
    corio::Coro<corio::StreamPair> connecting = corio::open_connection("127.0.0.1", port);
    corio::StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    writer.write(std::to_string(id) + " " + std::to_string(size) + "\n");
    writer.write(make_payload(id, size));
    co_await writer.drain();
    Reply reply;
    reply.id = id;
    std::string status = co_await reader.readline();
    if (status.starts_with("OK ")) {
        reply.status = Status::Ok;
        reply.body = co_await reader.readexactly(std::size_t(size));
    } else {
        reply.status = status.starts_with("ERR") ? Status::Refused : Status::Failed;
    }
    writer.close();
    co_await writer.wait_closed();
    co_return reply;
}

// One client. It owns its permit: the guard gives it back on every path, a cancellation included.
corio::Coro<> client(long id, std::uint16_t port, Config cfg, corio::SemaphoreGuard permit,
                     corio::Queue<Reply>* replies, Tally* tally) {
    corio::EventLoop& loop = corio::get_running_loop();
    const corio::Clock::time_point started = loop.time();
    Reply reply;
    reply.id = id;
    ++tally->in_flight;
    try {
        corio::Coro<Reply> bounded = corio::wait_for(exchange(id, port, cfg.size), Millis(cfg.timeout_ms));
        reply = co_await std::move(bounded);
    } catch (const corio::TimeoutError&) {
        reply.status = Status::TimedOut;
    } catch (const std::exception&) {
        reply.status = Status::Failed;  // refused, reset, cut short
    } catch (const corio::CancelledError&) {
        --tally->in_flight;
        ++tally->cancelled;
        throw;  // counted; now let the cancellation go on
    }
    --tally->in_flight;
    permit.release();  // the network part is over: let the next client in
    reply.latency_ms = std::chrono::duration<double, std::milli>(loop.time() - started).count();
    replies->put_nowait(std::move(reply));  // unbounded, so a client never waits here holding a permit
}

corio::Coro<> spawn_clients(Config cfg, std::uint16_t port, corio::Queue<Reply>* replies, Tally* tally) {
    corio::Semaphore permits(int(cfg.concurrency));
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        for (long id = 0; id < cfg.clients; ++id) {
            // Acquired here, not inside the client: with --clients 1000000 only `concurrency`
            // client frames exist at a time, not a million tasks queued on the semaphore.
            corio::SemaphoreGuard permit = co_await permits.acquire();
            tg.create_task(client(id, port, cfg, std::move(permit), replies, tally));
        }
    });
}

// ---------------------------------------------------------------------------------------
// The pipeline after the clients.

// On a pool thread: is each echo the payload that was sent? Plain CPU work that must not
// stall the loop.
std::vector<Reply> check_echoes(std::vector<Reply> batch, long size) {
    for (Reply& r : batch) {
        if (r.status == Status::Ok && fnv1a(r.body) != fnv1a(make_payload(r.id, size))) r.status = Status::BadEcho;
        r.body.clear();
    }
    return batch;
}

// Replies in, checked replies out, one at a time. Whatever has piled up goes to the thread in
// one trip (up to `batch`), so a busy run pays one thread hop per batch, not per reply. The
// stream ends once `replies` is shut down and drained.
corio::AsyncGenerator<Reply> verified(corio::Queue<Reply>* replies, long batch, long size) {
    try {
        for (;;) {
            std::vector<Reply> pending;
            Reply first = co_await replies->get();
            pending.push_back(std::move(first));
            while (long(pending.size()) < batch && !replies->empty()) pending.push_back(replies->get_nowait());
            auto checking = corio::to_thread(check_echoes, std::move(pending), size);
            std::vector<Reply> checked = co_await std::move(checking);
            for (Reply& r : checked) co_yield std::move(r);
        }
    } catch (const corio::QueueShutDown&) {
    }
}

corio::Coro<> verify(corio::Queue<Reply>* replies, corio::Queue<Reply>* checked, Config cfg) {
    corio::AsyncGenerator<Reply> stream = verified(replies, cfg.batch, cfg.size);
    while (auto r = co_await stream.next()) co_await checked->put(std::move(*r));
    checked->shutdown();  // the recorders finish what is queued, then stop
}

struct Stats {
    long ok = 0, refused = 0, bad_echo = 0, failed = 0, timed_out = 0;
    std::vector<double> latencies_ms;  // of the ok requests

    long errors() const { return refused + bad_echo + failed; }
    long recorded() const { return ok + errors() + timed_out; }
    void record(const Reply& r) {
        switch (r.status) {
            case Status::Ok:
                ++ok;
                latencies_ms.push_back(r.latency_ms);
                break;
            case Status::Refused: ++refused; break;
            case Status::BadEcho: ++bad_echo; break;
            case Status::Failed: ++failed; break;
            case Status::TimedOut: ++timed_out; break;
        }
    }
};

// Several recorders share one Stats without a lock: between two co_awaits nothing else runs
// on the loop.
corio::Coro<> record(corio::Queue<Reply>* checked, Stats* stats) {
    try {
        for (;;) {
            Reply r = co_await checked->get();
            stats->record(r);
        }
    } catch (const corio::QueueShutDown&) {
    }
}

// ---------------------------------------------------------------------------------------
// Progress and the report.

struct Run {
    Config cfg;
    bool tty = false;
    corio::Clock::time_point started{};
    Tally tally;
    Stats stats;
    ServerBooks server;
};

double seconds_since(corio::Clock::time_point t) {
    return std::chrono::duration<double>(corio::get_running_loop().time() - t).count();
}

void draw_progress(const Run& run, bool last) {
    const Stats& s = run.stats;
    double fraction = double(s.recorded()) / double(run.cfg.clients);
    char bar[25];
    int filled = int(fraction * 24);
    for (int i = 0; i < 24; ++i) bar[i] = i < filled ? '#' : '.';
    bar[24] = '\0';
    double elapsed = seconds_since(run.started);
    std::printf("%s[%s] %3d%%  %ld/%ld  ok %ld  err %ld  timeout %ld  in flight %ld  %.0f req/s%s",
                run.tty ? "\r" : "", bar, int(fraction * 100), s.recorded(), run.cfg.clients, s.ok, s.errors(),
                s.timed_out, run.tally.in_flight, elapsed > 0 ? double(s.recorded()) / elapsed : 0.0,
                run.tty ? "\x1b[K" : "\n");
    if (run.tty && last) std::printf("\n");
    std::fflush(stdout);
}

// A TTY gets one line redrawn ten times a second; a log gets a line a second.
corio::Coro<> show_progress(Run* run) {
    const Millis interval = run->tty ? 100ms : 1000ms;
    try {
        for (;;) {
            co_await corio::sleep(interval);
            draw_progress(*run, false);
        }
    } catch (const corio::CancelledError&) {
        draw_progress(*run, true);  // where it stopped, and the line ended
        throw;
    }
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    auto rank = std::size_t(std::ceil(p / 100 * double(sorted.size())));
    return sorted[std::max<std::size_t>(rank, 1) - 1];
}

// Prints the table; true when the books balance.
bool report(const Run& run, double seconds) {
    const Stats& s = run.stats;
    std::vector<double> lat = s.latencies_ms;
    std::sort(lat.begin(), lat.end());
    std::printf("\n%10s %8s %8s %9s %9s %8s %8s %8s\n", "requests", "ok", "errors", "timeouts", "req/s", "p50 ms",
                "p95 ms", "p99 ms");
    std::printf("%10ld %8ld %8ld %9ld %9.0f %8.1f %8.1f %8.1f\n\n", run.cfg.clients, s.ok, s.errors(), s.timed_out,
                double(s.recorded()) / seconds, percentile(lat, 50), percentile(lat, 95), percentile(lat, 99));
    std::printf("errors: %ld refused by the server, %ld connection failures, %ld bad echoes\n", s.refused, s.failed,
                s.bad_echo);
    std::printf("latency: of the ok requests, connect to last byte; wall time %.2f s\n", seconds);

    // Every client reported exactly once, through both queues; every reply a client got
    // answers a request the server read, and the server read no request twice.
    long answered = s.ok + s.refused + s.bad_echo;
    bool balanced = s.recorded() == run.cfg.clients && s.bad_echo == 0 && run.tally.in_flight == 0 &&
                    answered <= run.server.received && run.server.received <= run.cfg.clients &&
                    (s.timed_out + s.failed > 0 || run.server.received == run.cfg.clients);
    std::printf("check: %ld = %ld ok + %ld errors + %ld timeouts; server read %ld requests, clients got %ld answers: %s\n",
                run.cfg.clients, s.ok, s.errors(), s.timed_out, run.server.received, answered,
                balanced ? "balanced" : "MISMATCH");
    return balanced;
}

corio::Coro<> load(Run* run, std::uint16_t port) {
    corio::Queue<Reply> replies;                            // unbounded: see client()
    corio::Queue<Reply> checked(run->cfg.concurrency);      // bounded: slow recorders hold the verifier back
    co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
        corio::Task<> progress = tg.create_task(show_progress(run), "progress");
        std::vector<corio::Task<>> recorders;
        for (long w = 0; w < run->cfg.workers; ++w)
            recorders.push_back(tg.create_task(record(&checked, &run->stats), "recorder"));
        tg.create_task(verify(&replies, &checked, run->cfg), "verifier");

        corio::Coro<> clients = spawn_clients(run->cfg, port, &replies, &run->tally);
        co_await std::move(clients);
        replies.shutdown();  // the verifier drains what is left, then shuts `checked` down...
        for (corio::Task<>& r : recorders) co_await r;  // ...and the recorders drain that
        progress.cancel();
    });
}

corio::Coro<int> run_demo(Run* run) {
    const Config& cfg = run->cfg;
    // asyncio's default backlog (100) is shorter than a burst of `concurrency` connects; a
    // full backlog drops SYNs, which the kernel retries a second later: timeouts that would
    // be the demo's fault, not the server's.
    corio::ServerOptions options;
    options.backlog = int(std::max(cfg.concurrency, 128L));
    ServerBooks* books = &run->server;
    long slow_pct = cfg.slow_pct;
    // A plain lambda that returns the handler's Coro: the captures are copied into the
    // coroutine's parameters, so nothing dangles once the lambda is gone.
    auto handler = [books, slow_pct](corio::StreamReader r, corio::StreamWriter w) {
        return serve_request(std::move(r), std::move(w), books, slow_pct);
    };
    corio::Coro<corio::Server> starting = corio::start_server(handler, "127.0.0.1", 0, options);
    corio::Server server = co_await std::move(starting);
    std::uint16_t port = server.sockets()[0].getsockname().port();

    std::printf("corio demo: %ld clients, %ld at a time, a %ld ms timeout each, %ld-byte messages\n", cfg.clients,
                cfg.concurrency, cfg.timeout_ms, cfg.size);
    std::printf("server on 127.0.0.1:%u: answers in 5-100 ms, stalls 300-600 ms on %ld%%, refuses 1%%\n\n",
                unsigned(port), cfg.slow_pct);
    std::fflush(stdout);

    run->started = corio::get_running_loop().time();
    std::exception_ptr error;  // Ctrl-C lands here as a CancelledError
    try {
        corio::Coro<> loading = load(run, port);
        co_await std::move(loading);
    } catch (...) {
        error = std::current_exception();
    }
    double seconds = seconds_since(run->started);
    // On every way out, Ctrl-C included: stop accepting, cancel the handlers still stalling for
    // a client that timed out, and wait for them all.
    server.close();
    server.cancel_clients();
    co_await server.wait_closed();
    if (error) std::rethrow_exception(error);
    co_return report(*run, seconds) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    Run run;
    if (int code = parse_args(argc, argv, run.cfg); code >= 0) return code;
    if (!ensure_descriptors(run.cfg.concurrency)) return 2;
    run.tty = ::isatty(STDOUT_FILENO) == 1;
    try {
        return corio::run(run_demo(&run));
    } catch (const corio::KeyboardInterrupt&) {
        std::printf("interrupted: cancelled %ld in-flight requests cleanly (%ld of %ld done, server closed)\n",
                    run.tally.cancelled, run.stats.recorded(), run.cfg.clients);
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example_demo: %s\n", e.what());
        return 1;
    }
}
