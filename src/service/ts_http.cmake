# The HTTP layer of the service (server, APIs, the embedded page). Included by
# CMakeLists.txt; adds its sources to ts_service.
set(TS_WEB_DIR ${PROJECT_SOURCE_DIR}/web)
set(TS_WEB_FILES index.html app.js style.css favicon.ico)
set(web_deps "")
foreach(f ${TS_WEB_FILES})
    list(APPEND web_deps ${TS_WEB_DIR}/${f})
endforeach()
string(REPLACE ";" "," web_files_arg "${TS_WEB_FILES}")
add_custom_command(
    OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/ts_web_assets.c
    COMMAND ${CMAKE_COMMAND} -DOUT=${CMAKE_CURRENT_BINARY_DIR}/ts_web_assets.c
            -DWEB_DIR=${TS_WEB_DIR} -DFILES=${web_files_arg}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/ts_web_embed.cmake
    DEPENDS ${web_deps} ${CMAKE_CURRENT_SOURCE_DIR}/ts_web_embed.cmake
    COMMENT "Embedding web/ into the binary"
    VERBATIM)
target_sources(ts_service PRIVATE
    ts_http.c
    ts_multipart.c
    ts_api_jobs.c
    ts_api_openai.c
    ts_web.c
    ${CMAKE_CURRENT_BINARY_DIR}/ts_web_assets.c)
