// Seed "Testing Async Code (pytest-asyncio)": an async test and an async fixture.
//   @pytest.mark.asyncio
//   async def test_fetch_data(): result = await fetch_data("test_url"); assert result["url"] == "test_url"
//   @pytest.fixture async def db_connection(): conn = await create_connection(); yield conn; await conn.close()
#include <corio/testing.hpp>

#include <map>
#include <string>

using namespace std::chrono_literals;

corio::Coro<std::map<std::string, std::string>> fetch_data(std::string url) {
    co_await corio::sleep(1s);
    co_return std::map<std::string, std::string>{{"url", url}, {"data", "..."}};
}

CORIO_TEST(FetchData, ReturnsTheUrl) {
    corio::testing::MockClock clock;  // the 1 s sleep completes at once, in virtual time
    auto result = co_await fetch_data("test_url");
    EXPECT_EQ(result["url"], "test_url");
}

struct Connection {
    bool open = true;
    int queries = 0;
    corio::Coro<int> execute(std::string) {
        co_await corio::sleep(10ms);
        ++queries;
        co_return 1;
    }
    corio::Coro<> close() {
        co_await corio::sleep(1ms);
        open = false;
    }
};

// The async fixture: SetUpAsync is the code before `yield`, TearDownAsync the code after.
class DbSession : public corio::testing::AsyncTest {
protected:
    corio::Coro<> SetUpAsync() override {
        co_await corio::sleep(1ms);  // conn = await create_connection()
        conn = Connection{};
    }
    corio::Coro<> TearDownAsync() override {
        co_await conn.close();
        EXPECT_FALSE(conn.open);
    }
    Connection conn;
};

CORIO_TEST_F(DbSession, QueryReturnsOneRow) {
    int rows = co_await this->conn.execute("SELECT 1");
    EXPECT_EQ(rows, 1);
    EXPECT_TRUE(this->conn.open);
}
