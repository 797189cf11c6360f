# grid.mk - the objective-ablation grid, included at the end of Makefile (uses its BIN and install).
#
# Every cell is a FILE target, RUNS_DIR/GRID/<combination>/<budget>x/seed<k>/DONE, so make skips
# finished cells by itself, `make -j2 grid` trains two cells at a time, and `make -n grid` lists
# the cells still to run. The runner (python -m vtp_lightning.grid run-cell) also skips DONE cells,
# resumes interrupted ones from checkpoints/last.ckpt and locks each cell while it trains.
# Budgets are written the shortest way (1, 3, 10, 0.5): folder names and targets use that form.
#
#   make grid GRID=pilot BUDGETS="1 3" SEEDS="0 1"    make clip_ssl_ae    make plots GRID=pilot

GRID ?= default
BUDGETS ?= 1 3 10
SEEDS ?= 0
COMBINATIONS := ae clip_ae dino_ae mim_ae ssl_ae clip_dino_ae clip_mim_ae clip_ssl_ae
RUNS_DIR ?= runs
# steps of a 1x budget; empty = each config's own trainer.max_steps
BASE_STEPS ?=
# extra arguments for every training command, e.g. GRID_EXTRA="--trainer.accelerator cpu"
GRID_EXTRA ?=
TRAIN_COMMAND ?= $(BIN)/lightning fit

grid_done = $(RUNS_DIR)/$(GRID)/$(1)/$(2)x/seed$(3)/DONE
grid_cells_of = $(foreach b,$(BUDGETS),$(foreach s,$(SEEDS),$(call grid_done,$(1),$(b),$(s))))
GRID_CELLS := $(foreach c,$(COMBINATIONS),$(call grid_cells_of,$(c)))
GRID_FLAGS = --grid $(GRID) --runs-dir $(RUNS_DIR) --train-command '$(TRAIN_COMMAND)' --no-echo \
	$(if $(BASE_STEPS),--base-steps $(BASE_STEPS)) $(if $(GRID_EXTRA),--extra $(GRID_EXTRA))

# one file rule per cell; `install` is order-only so a phony prerequisite never re-runs a DONE cell
define grid_cell_rule
$(call grid_done,$(1),$(2),$(3)): | install
	$(BIN)/python -m vtp_lightning.grid run-cell $(1) $(2) $(3) $(GRID_FLAGS)
endef

# one phony target per combination: its cells over BUDGETS x SEEDS
define grid_combination_rule
$(1): $(call grid_cells_of,$(1))
endef

$(foreach c,$(COMBINATIONS),$(foreach b,$(BUDGETS),$(foreach s,$(SEEDS),\
	$(eval $(call grid_cell_rule,$(c),$(b),$(s))))))
$(foreach c,$(COMBINATIONS),$(eval $(call grid_combination_rule,$(c))))

grid: $(GRID_CELLS) ## train every cell: COMBINATIONS x BUDGETS x SEEDS into RUNS_DIR/GRID (-j2 safe)

grid-list: install ## print every cell of the grid with its status (done/running/interrupted/failed/pending)
	@$(BIN)/python -m vtp_lightning.grid list --grid $(GRID) --runs-dir $(RUNS_DIR) \
		--combinations $(COMBINATIONS) --budgets $(BUDGETS) --seeds $(SEEDS)

plots: install ## comparison figures and results.md for RUNS_DIR/GRID (vtp-report), into RUNS_DIR/GRID/report
	$(BIN)/vtp-report $(RUNS_DIR)/$(GRID)

# the per-combination targets are generated, so `make help` cannot grep them: list them here
help: grid-targets
grid-targets: ## list the per-combination grid targets (make ae, make clip_ssl_ae, ...)
	@printf '  \033[36m%-16s\033[0m %s\n' $(foreach c,$(COMBINATIONS),'$(c)' 'train the $(c) cells: BUDGETS x SEEDS')

.PHONY: grid grid-list plots grid-targets $(COMBINATIONS)
