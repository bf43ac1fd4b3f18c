package cli

func (a *app) servicePlan() (plan, error) {
	t, err := a.launchdTarget()
	if err != nil {
		return plan{}, err
	}
	return launchdPlan(t), nil
}
