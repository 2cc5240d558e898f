"""ward.sim"""
