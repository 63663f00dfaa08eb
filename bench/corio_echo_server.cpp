// W4 echo server (peers' convention): one task per connection, 64 KiB reads, TCP_NODELAY,
// written with corio's streams API. `corio_echo_server PORT LOOPS` serves the port from LOOPS
// loops, one a thread (run_loops), each with its own reuse_port listener: the kernel spreads
// the connections over them. Like the Asio peer it reads into its own 64 KiB buffer
// (read_into) and writes from it; CORIO_ECHO_COPY=1 uses read(n), which returns a new string.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <vector>

bool g_copy = false;

corio::Coro<> echo(corio::StreamReader reader, corio::StreamWriter writer) {
    try {
        if (g_copy) {
            for (;;) {
                std::string data = co_await reader.read(65536);
                if (data.empty()) break;
                writer.write(data);
                co_await writer.drain();
            }
        } else {
            std::vector<char> buffer(65536);
            for (;;) {
                std::size_t n = co_await reader.read_into(buffer);
                if (n == 0) break;
                writer.write(std::string_view(buffer.data(), n));
                co_await writer.drain();
            }
        }
    } catch (const std::system_error&) {
        // The client resets its connections when it is done: not worth a report.
    }
}

corio::Coro<int> serve(std::uint16_t port, bool reuse_port) {
    corio::ServerOptions options;
    options.reuse_port = reuse_port;
    corio::Server server = co_await corio::start_server(echo, "127.0.0.1", port, options);
    co_await server.serve_forever();
    co_return 0;
}

int main(int argc, char** argv) {
    auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 25000);
    long loops = argc > 2 ? std::atol(argv[2]) : 1;
    g_copy = std::getenv("CORIO_ECHO_COPY") != nullptr;
    try {
        if (loops <= 1) return corio::run(serve(port, false));
        corio::RunLoopsOptions options;
        options.pin_threads = true;
        corio::run_loops(std::size_t(loops), [port](std::size_t) { return serve(port, true); }, std::move(options));
        return 0;
    } catch (const corio::KeyboardInterrupt&) {
        return 0;
    } catch (const std::exception& e) {  // e.g. the port is taken: say so instead of aborting
        std::fprintf(stderr, "corio_echo_server: %s\n", e.what());
        return 1;
    }
}
