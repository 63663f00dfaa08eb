// Interoperability with peers no one here wrote: Python's own asyncio (/usr/bin/python3) and
// netcat, over 127.0.0.1 only.
#include <corio/server.hpp>
#include <corio/streams.hpp>
#include <corio/subprocess.hpp>
#include <corio/testing.hpp>

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <optional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPython = "/usr/bin/python3";

void skip_test(const std::string& why) { GTEST_SKIP() << why; }

Coro<> line_echo(StreamReader reader, StreamWriter writer) {
    for (;;) {
        std::string line = co_await reader.readline();
        if (line.empty()) break;
        writer.write(line);
        co_await writer.drain();
    }
}

Coro<> byte_echo(StreamReader reader, StreamWriter writer) {
    for (;;) {
        std::string data = co_await reader.read(65536);
        if (data.empty()) break;
        writer.write(data);
        co_await writer.drain();
    }
}

template <class H>
Coro<Server> serve_local(const H& handler) {
    return start_server(handler, "127.0.0.1", 0);
}

// Runs argv to the end (bounded), returning stdout, stderr and the exit code.
struct ChildResult {
    std::string out, err;
    int code = -1;
};
Coro<ChildResult> run_child(std::vector<std::string> argv, std::string input, std::chrono::seconds limit) {
    Coro<Process> spawning = create_subprocess_exec(std::move(argv), {.in = PIPE, .out = PIPE, .err = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate(std::move(input));
    Coro<std::pair<std::string, std::string>> bounded = wait_for(std::move(talking), limit);
    std::optional<std::pair<std::string, std::string>> result;
    bool timed_out = false;
    try {
        result = co_await std::move(bounded);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    if (timed_out) {
        p.kill();
        int killed = co_await p.wait();
        (void)killed;
        co_await sleep(0ms);  // let communicate()'s leftover readers see EOF and finish
        throw TimeoutError();
    }
    ChildResult o;
    o.out = std::move(result->first);
    o.err = std::move(result->second);
    o.code = co_await p.wait();
    co_return o;
}

// A Python asyncio client: connects, sends lines, checks every echo, then a 1 MiB blob, half-
// closes and expects EOF back; prints OK.
constexpr const char* kPythonClient = R"PY(
import asyncio, sys

async def main(port):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    for i in range(100):
        line = f'line {i} from python asyncio\n'.encode()
        writer.write(line)
        await writer.drain()
        echo = await asyncio.wait_for(reader.readline(), 10)
        if echo != line:
            print('MISMATCH', echo, line)
            return 1
    blob = bytes(range(256)) * 4096 + b'\n'
    writer.write(blob)
    await writer.drain()
    back = await asyncio.wait_for(reader.readexactly(len(blob)), 10)
    if back != blob:
        print('BLOB MISMATCH')
        return 1
    writer.write_eof()
    rest = await asyncio.wait_for(reader.read(), 10)
    if rest != b'':
        print('EXPECTED EOF, GOT', rest[:50])
        return 1
    writer.close()
    await writer.wait_closed()
    print('OK')
    return 0

sys.exit(asyncio.run(main(int(sys.argv[1]))))
)PY";

// A Python asyncio server on an ephemeral port: prints the port first, upper-cases each line
// of its one client, then exits.
constexpr const char* kPythonServer = R"PY(
import asyncio, sys

async def main():
    done = asyncio.Event()
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set()
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.wait_for(done.wait(), 30)
    print('DONE', flush=True)

asyncio.run(main())
)PY";

bool have_python() { return ::access(kPython, X_OK) == 0; }

}  // namespace

CORIO_TEST(Interop, PythonAsyncioClientAgainstCorioServer) {
    if (!have_python()) {
        skip_test("/usr/bin/python3 is not installed");
        co_return;
    }
    Server server = co_await serve_local(line_echo);
    std::string port = std::to_string(server.sockets()[0].getsockname().port());
    Coro<ChildResult> running = run_child({kPython, "-c", kPythonClient, port}, "", 30s);
    ChildResult o = co_await std::move(running);
    EXPECT_EQ(o.out, "OK\n") << o.err;
    EXPECT_EQ(o.code, 0) << o.err;
    co_await server.aclose();
}

CORIO_TEST(Interop, ManyPythonClientsAtOnce) {
    if (!have_python()) {
        skip_test("/usr/bin/python3 is not installed");
        co_return;
    }
    Server server = co_await serve_local(line_echo);
    std::string port = std::to_string(server.sockets()[0].getsockname().port());
    std::vector<ChildResult> outcomes(4);
    auto one = [&](std::size_t i) -> Coro<> {
        Coro<ChildResult> running = run_child({kPython, "-c", kPythonClient, port}, "", 30s);
        outcomes[i] = co_await std::move(running);
    };
    auto spawn_all = [&](TaskGroup& tg) -> Coro<> {
        for (std::size_t i = 0; i < outcomes.size(); ++i) tg.create_task(one(i));
        co_return;
    };
    Coro<> group = task_group(spawn_all);
    co_await std::move(group);
    for (auto& o : outcomes) {
        EXPECT_EQ(o.out, "OK\n") << o.err;
        EXPECT_EQ(o.code, 0);
    }
    co_await server.aclose();
}

CORIO_TEST(Interop, NetcatAgainstCorioServer) {
    // netcat-openbsd: -N shuts the socket down after EOF on stdin (so the echo server sees EOF
    // and closes); older builds only have -q. -w bounds every wait.
    Coro<ChildResult> probing = run_child({"nc", "-h"}, "", 10s);
    std::optional<ChildResult> help;
    try {
        help = co_await std::move(probing);
    } catch (const std::system_error& e) {
        if (e.code().value() != ENOENT) throw;
    }
    if (!help) {
        skip_test("nc is not installed");
        co_return;
    }
    std::string usage = help->out + help->err;
    std::vector<std::string> flags;
    if (usage.find("-N") != std::string::npos)
        flags = {"-N"};
    else if (usage.find("-q") != std::string::npos)
        flags = {"-q", "1"};
    else {
        skip_test("this nc has neither -N nor -q");
        co_return;
    }
    Server server = co_await serve_local(byte_echo);
    std::string port = std::to_string(server.sockets()[0].getsockname().port());
    std::vector<std::string> argv{"nc", "-w", "10"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("127.0.0.1");
    argv.push_back(port);
    std::string input;
    for (int i = 0; i < 200; ++i) input += "netcat line " + std::to_string(i) + "\n";
    Coro<ChildResult> running = run_child(argv, input, 30s);
    ChildResult o = co_await std::move(running);
    EXPECT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(o.out, input);
    co_await server.aclose();
}

CORIO_TEST(Interop, CorioClientAgainstPythonAsyncioServer) {
    if (!have_python()) {
        skip_test("/usr/bin/python3 is not installed");
        co_return;
    }
    std::vector<std::string> argv{kPython, "-c", kPythonServer};
    Coro<Process> spawning = create_subprocess_exec(argv, {.out = PIPE, .err = PIPE});
    Process py = co_await std::move(spawning);
    // The server prints its port first.
    Coro<std::string> first_line = wait_for(py.out().readline(), 30s);
    std::string port_line = co_await std::move(first_line);
    CO_ASSERT_FALSE(port_line.empty());
    int port = std::stoi(port_line);
    EXPECT_GT(port, 0);

    Coro<StreamPair> connecting = open_connection("127.0.0.1", std::uint16_t(port));
    StreamPair conn = co_await std::move(connecting);
    auto& [reader, writer] = conn;
    for (int i = 0; i < 50; ++i) {
        std::string line = "hello python " + std::to_string(i) + "\n";
        writer.write(line);
        co_await writer.drain();
        Coro<std::string> reply_coro = wait_for(reader.readline(), 10s);
        std::string reply = co_await std::move(reply_coro);
        std::string upper = line;
        for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
        EXPECT_EQ(reply, upper);
    }
    // A long line too, in many TCP segments.
    std::string big(60000, 'a');  // under asyncio's 64 KiB readline limit
    big += "\n";
    writer.write(big);
    Coro<std::string> big_reply_coro = wait_for(reader.readexactly(big.size()), 10s);
    std::string big_reply = co_await std::move(big_reply_coro);
    EXPECT_EQ(big_reply, std::string(60000, 'A') + "\n");
    // Half-close: the Python server sees EOF, closes its side, and exits.
    writer.write_eof();
    Coro<std::string> rest_coro = wait_for(reader.read(-1), 10s);
    std::string rest = co_await std::move(rest_coro);
    EXPECT_EQ(rest, "");
    writer.close();
    co_await writer.wait_closed();
    Coro<std::string> done_coro = wait_for(py.out().read(-1), 30s);
    std::string done = co_await std::move(done_coro);
    EXPECT_EQ(done, "DONE\n");
    Coro<int> exiting = wait_for(py.wait(), 30s);
    int code = co_await std::move(exiting);
    std::string err = co_await py.err().read(-1);
    EXPECT_EQ(code, 0) << err;
}

CORIO_TEST(Interop, PythonAsyncioOverAUnixSocket) {
    if (!have_python()) {
        skip_test("/usr/bin/python3 is not installed");
        co_return;
    }
    std::string path = "/tmp/corio-interop-" + std::to_string(::getpid()) + ".sock";
    Coro<Server> starting = start_unix_server(line_echo, path);
    Server server = co_await std::move(starting);
    std::string script = R"PY(
import asyncio, sys
async def main(path):
    r, w = await asyncio.open_unix_connection(path)
    w.write(b'over a unix socket\n')
    await w.drain()
    print((await asyncio.wait_for(r.readline(), 10)).decode(), end='')
    w.close()
    await w.wait_closed()
asyncio.run(main(sys.argv[1]))
)PY";
    Coro<ChildResult> running = run_child({kPython, "-c", script, path}, "", 30s);
    ChildResult o = co_await std::move(running);
    EXPECT_EQ(o.out, "over a unix socket\n") << o.err;
    EXPECT_EQ(o.code, 0);
    co_await server.aclose();
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the server's socket file was not removed";
}
