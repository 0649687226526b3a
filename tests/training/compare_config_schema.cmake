# ctest training.config_schema_current: the checked-in schema the Python trainer reads equals the
# one the trainer's key table prints now.
execute_process(COMMAND ${TRAINER} --dump-config-schema OUTPUT_VARIABLE dumped RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TRAINER} --dump-config-schema failed (${rc})")
endif()
file(READ ${SCHEMA} stored)
if(NOT dumped STREQUAL stored)
  message(FATAL_ERROR "${SCHEMA} differs from the trainer's key table (training/config.cpp); regenerate it:\n"
                      "  build/training/bitnetmcu-train --dump-config-schema > python/bitnetmcu_torch/config_schema.json")
endif()
