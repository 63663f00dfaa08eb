// Seed "Async Context Manager", both forms:
//   class AsyncDatabase: __aenter__ connects, __aexit__ closes     -> a type with Coro<> aclose()
//   @asynccontextmanager async def db_connection(url): ... yield conn ... finally: close
//                                                                    -> an AsyncGenerator
#include <corio/corio.hpp>

#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> journal;  // what happened, in order, checked at the end

struct Connection {
    std::string url;
    corio::Coro<std::vector<std::string>> query(std::string sql) {
        co_await corio::sleep(10ms);
        journal.push_back("query " + sql);
        co_return std::vector<std::string>{"alice", "bob"};
    }
    corio::Coro<> close() {
        co_await corio::sleep(1ms);
        journal.push_back("close " + url);
    }
};

corio::Coro<Connection> connect_db(std::string url) {
    co_await corio::sleep(10ms);
    journal.push_back("connect " + url);
    co_return Connection{url};
}

// Class-based: what async with AsyncDatabase() as db: gives, aclose() is __aexit__.
class AsyncDatabase {
public:
    static corio::Coro<AsyncDatabase> open(std::string url) {
        Connection c = co_await connect_db(std::move(url));
        co_return AsyncDatabase(std::move(c));
    }
    corio::Coro<std::vector<std::string>> query(std::string sql) { return conn_.query(std::move(sql)); }
    corio::Coro<> aclose() { return conn_.close(); }

private:
    explicit AsyncDatabase(Connection c) : conn_(std::move(c)) {}
    Connection conn_;
};

// Decorator-based: the generator's code before co_yield is __aenter__, after it __aexit__. It
// yields a pointer: the body must use the very connection the generator closes (a yielded value
// would be a copy), as Python's `yield conn` hands over the object itself.
corio::AsyncGenerator<Connection*> db_connection(std::string url) {
    Connection conn = co_await connect_db(url);
    std::exception_ptr error;
    try {
        co_yield &conn;
    } catch (...) {
        error = std::current_exception();  // C++ cannot co_await in a handler: close below
    }
    co_await conn.close();  // the `finally:` block
    if (error) std::rethrow_exception(error);
}

corio::Coro<int> use_db() {
    co_await corio::async_with(AsyncDatabase::open("db://users"), [&](AsyncDatabase& db) -> corio::Coro<> {
        auto rows = co_await db.query("SELECT * FROM users");
        std::cout << "class-based: " << rows.size() << " rows\n";
    });
    co_await corio::async_with(db_connection("db://orders"), [&](Connection* conn) -> corio::Coro<> {
        co_await conn->query("SELECT 1");
        std::cout << "decorator-based: query done\n";
    });
    // The cleanup runs on the error path too.
    try {
        co_await corio::async_with(db_connection("db://broken"), [&](Connection*) -> corio::Coro<> {
            throw std::runtime_error("bad query");
            co_return;
        });
    } catch (const std::runtime_error& e) {
        std::cout << "error propagated after cleanup: " << e.what() << "\n";
    }
    for (const auto& line : journal) std::cout << "  " << line << "\n";
    std::vector<std::string> expected{"connect db://users", "query SELECT * FROM users", "close db://users",
                                      "connect db://orders", "query SELECT 1", "close db://orders",
                                      "connect db://broken", "close db://broken"};
    co_return journal == expected ? 0 : 1;
}

int main() { return corio::run(use_db()); }
