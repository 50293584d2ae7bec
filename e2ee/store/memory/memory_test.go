package memory_test

import (
	"testing"

	"myelin/e2ee"
	"myelin/e2ee/store/memory"
	"myelin/e2ee/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) e2ee.Store { return memory.New() })
}
